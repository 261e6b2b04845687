// Validation rules and messages follow Kubernetes' pkg/apis/core/validation
// and apimachinery's validation helpers, sized to the fields of types.proto.
#include "core/api/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "core/api/labels.h"
#include "core/api/names.h"
#include "core/api/object.h"
#include "core/api/quantity.h"
#include "core/api/types.pb.h"

namespace flotilla::api {
namespace {

using Errors = std::vector<FieldError>;

constexpr std::string_view kRequired = "Required value";
constexpr std::string_view kInvalid = "Invalid value";
constexpr std::string_view kUnsupported = "Unsupported value";
constexpr std::string_view kTooLong = "Too long";
constexpr std::string_view kDuplicate = "Duplicate value";
constexpr std::string_view kForbidden = "Forbidden";
constexpr std::string_view kNotFound = "Not found";
constexpr std::string_view kTooMany = "Too many";

constexpr size_t kTotalAnnotationSizeLimit = 256 * 1024;

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Path builders: "a" + ".b", "[0]", "[key]".
std::string child(const std::string& path, std::string_view name) {
  return path.empty() ? std::string(name) : path + "." + std::string(name);
}
std::string index(const std::string& path, int i) { return path + "[" + std::to_string(i) + "]"; }
std::string key(const std::string& path, std::string_view k) {
  return path + "[" + std::string(k) + "]";
}

void required(Errors& e, const std::string& f, std::string detail = "") {
  e.push_back({f, std::string(kRequired), "", std::move(detail)});
}
void invalid(Errors& e, const std::string& f, std::string value, std::string detail) {
  e.push_back({f, std::string(kInvalid), std::move(value), std::move(detail)});
}
void forbidden(Errors& e, const std::string& f, std::string detail) {
  e.push_back({f, std::string(kForbidden), "", std::move(detail)});
}
void duplicate(Errors& e, const std::string& f, std::string value) {
  e.push_back({f, std::string(kDuplicate), std::move(value), ""});
}
// "endpoints: Too many: 1001: must have at most 1000 items"
void too_many(Errors& e, const std::string& f, int count, int most) {
  e.push_back({f, std::string(kTooMany), std::to_string(count),
               "must have at most " + std::to_string(most) + " items"});
}

// Checks `value` is empty (when allowed) or one of `supported`.
void check_supported(Errors& e, const std::string& f, const std::string& value,
                     std::vector<std::string_view> supported, bool empty_ok = true) {
  if (value.empty() && empty_ok) return;
  if (std::find(supported.begin(), supported.end(), value) != supported.end()) return;
  std::sort(supported.begin(), supported.end());
  std::string detail = "supported values: ";
  for (size_t i = 0; i < supported.size(); ++i) {
    detail += (i ? ", " : "") + quote(supported[i]);
  }
  e.push_back({f, std::string(kUnsupported), quote(value), detail});
}

void check_non_negative(Errors& e, const std::string& f, int64_t v) {
  if (v < 0) invalid(e, f, std::to_string(v), "must be greater than or equal to 0");
}
void check_non_negative(Errors& e, const std::string& parent, std::string_view field, int64_t v) {
  if (v < 0) check_non_negative(e, child(parent, field), v);
}

void check_port_range(Errors& e, const std::string& f, int64_t port) {
  if (port < 1 || port > 65535) {
    invalid(e, f, std::to_string(port), "must be between 1 and 65535, inclusive");
  }
}

// ------------------------------------------------------------- name rules

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

constexpr std::string_view kQualifiedNameFormat =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

bool qualified_name_part_ok(std::string_view s) {
  if (s.empty() || !is_name_char(s.front()) || !is_name_char(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_name_char(c) || c == '-' || c == '_' || c == '.';
  });
}

// IANA service names, which Kubernetes requires of port names.
std::vector<std::string> port_name_errors(std::string_view s) {
  std::vector<std::string> errs;
  if (s.size() > 15) errs.push_back("must be no more than 15 characters");
  bool chars_ok = std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
  if (!chars_ok) {
    errs.push_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  }
  if (s.find("--") != std::string_view::npos) errs.push_back("must not contain consecutive hyphens");
  if (std::none_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; })) {
    errs.push_back("must contain at least one letter (a-z)");
  }
  if (!s.empty() && (s.front() == '-' || s.back() == '-')) {
    errs.push_back("must not begin or end with a hyphen");
  }
  return errs;
}

// One Invalid error per reason about `value` at `f` (or `parent.field`). The
// path and the quoted value are built only when there is an error: every
// store write validates its object.
void add_all(Errors& e, const std::string& f, std::string_view value,
             const std::vector<std::string>& reasons) {
  if (reasons.empty()) return;
  const std::string quoted = quote(value);
  for (const std::string& r : reasons) invalid(e, f, quoted, r);
}
void add_all(Errors& e, const std::string& parent, std::string_view field, std::string_view value,
             const std::vector<std::string>& reasons) {
  if (reasons.empty()) return;
  add_all(e, child(parent, field), value, reasons);
}

bool valid_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string go_map(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  std::string out = "map[string]string{";
  bool first = true;
  for (const auto& [k, v] : sorted) {
    if (!first) out += ", ";
    first = false;
    out += quote(k) + ":" + quote(v);
  }
  return out + "}";
}

// ------------------------------------------------------------- metadata

// Labels (and annotations) are checked in place; sorted, for a stable order
// of errors, only when one is wrong.
void validate_labels(Errors& e, const google::protobuf::Map<std::string, std::string>& labels,
                     const std::string& parent, std::string_view field) {
  if (std::all_of(labels.begin(), labels.end(), [](const auto& kv) {
        return qualified_name_errors(kv.first).empty() && label_value_errors(kv.second).empty();
      })) {
    return;
  }
  const std::string f = child(parent, field);
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  for (const auto& [k, v] : sorted) {
    add_all(e, f, k, qualified_name_errors(k));
    add_all(e, f, v, label_value_errors(v));
  }
}

void validate_annotations(Errors& e,
                          const google::protobuf::Map<std::string, std::string>& annotations,
                          const std::string& parent, std::string_view field) {
  if (annotations.empty()) return;
  const std::string f = child(parent, field);
  std::map<std::string, std::string> sorted(annotations.begin(), annotations.end());
  size_t total = 0;
  for (const auto& [k, v] : sorted) {
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; });
    add_all(e, f, k, qualified_name_errors(lower));
    total += k.size() + v.size();
  }
  if (total > kTotalAnnotationSizeLimit) {
    e.push_back({f, std::string(kTooLong), "",
                 "must have at most " + std::to_string(kTotalAnnotationSizeLimit) + " bytes"});
  }
}

enum class NameRule { kSubdomain, kLabel };

void validate_owner_references(Errors& e, const ObjectMeta& m, const std::string& f) {
  for (int i = 0; i < m.owner_references_size(); ++i) {
    const OwnerReference& o = m.owner_references(i);
    if (!o.api_version().empty() && !o.kind().empty() && !o.name().empty() && !o.uid().empty()) {
      continue;
    }
    std::string p = index(child(f, "ownerReferences"), i);
    if (o.api_version().empty()) invalid(e, child(p, "apiVersion"), quote(""), "version must not be empty");
    if (o.kind().empty()) invalid(e, child(p, "kind"), quote(""), "kind must not be empty");
    if (o.name().empty()) invalid(e, child(p, "name"), quote(""), "name must not be empty");
    if (o.uid().empty()) invalid(e, child(p, "uid"), quote(""), "uid must not be empty");
  }
}

// `old`, on an update, is the stored version, which passed validation when it
// was written: a field left as it was is not checked again (Kubernetes calls
// this ratcheting: an update is refused for what it changes, not for what it
// keeps). Renewals and status reports, most writes of a large cluster, change
// none of the names, labels or quantities.
void validate_meta(Errors& e, const ObjectMeta& m, bool namespaced, NameRule rule,
                   const std::string& f, bool name_required = true,
                   const ObjectMeta* old = nullptr) {
  if (old != nullptr && m.name() == old->name() && m.generate_name() == old->generate_name() &&
      m.namespace_() == old->namespace_() && same_labels(m.labels(), old->labels()) &&
      same_labels(m.annotations(), old->annotations())) {
    // In the order the full check below reports them.
    if (m.has_deletion_grace_period_seconds()) {
      check_non_negative(e, f, "deletionGracePeriodSeconds", m.deletion_grace_period_seconds());
    }
    check_non_negative(e, f, "generation", m.generation());
    validate_owner_references(e, m, f);
    return;
  }
  auto name_errors = [&](std::string_view n) {
    return rule == NameRule::kLabel ? dns1123_label_errors(n) : dns1123_subdomain_errors(n);
  };
  if (!m.generate_name().empty()) {
    std::string prefix = m.generate_name();
    if (prefix.back() == '-') prefix.pop_back();  // Kubernetes masks one trailing dash
    if (!prefix.empty()) {
      add_all(e, f, "generateName", m.generate_name(), name_errors(prefix));
    }
  }
  if (m.name().empty()) {
    if (name_required && m.generate_name().empty()) {
      required(e, child(f, "name"), "name or generateName is required");
    }
  } else {
    add_all(e, f, "name", m.name(), name_errors(m.name()));
  }
  if (namespaced) {
    if (!m.namespace_().empty()) {
      add_all(e, f, "namespace", m.namespace_(),
              dns1123_label_errors(m.namespace_()));
    }
  } else if (!m.namespace_().empty()) {
    forbidden(e, child(f, "namespace"), "not allowed on this type");
  }
  if (m.has_deletion_grace_period_seconds()) {
    check_non_negative(e, f, "deletionGracePeriodSeconds",
                       m.deletion_grace_period_seconds());
  }
  check_non_negative(e, f, "generation", m.generation());
  validate_labels(e, m.labels(), f, "labels");
  validate_annotations(e, m.annotations(), f, "annotations");
  validate_owner_references(e, m, f);
}

// ------------------------------------------------------------- pod spec

void validate_int_or_string_port(Errors& e, const IntOrString& port, const std::string& f,
                                 bool required_value) {
  switch (port.value_case()) {
    case IntOrString::kIntVal:
      check_port_range(e, f, port.int_val());
      break;
    case IntOrString::kStrVal:
      add_all(e, f, port.str_val(), port_name_errors(port.str_val()));
      break;
    case IntOrString::VALUE_NOT_SET:
      if (required_value) required(e, f);
      break;
  }
}

void validate_probe(Errors& e, const Probe& p, const std::string& f, bool success_must_be_one) {
  int handlers = 0;
  auto handler = [&](bool present, std::string_view name) {
    if (!present) return;
    if (++handlers > 1) forbidden(e, child(f, name), "may not specify more than 1 handler type");
  };
  handler(p.has_exec(), "exec");
  handler(p.has_http_get(), "httpGet");
  handler(p.has_tcp_socket(), "tcpSocket");
  if (handlers == 0) required(e, f, "must specify a handler type");
  if (p.has_exec() && p.exec().command_size() == 0) required(e, child(f, "exec.command"));
  if (p.has_http_get()) {
    const HTTPGetAction& h = p.http_get();
    validate_int_or_string_port(e, h.port(), child(f, "httpGet.port"), true);
    check_supported(e, child(f, "httpGet.scheme"), h.scheme(), {"HTTP", "HTTPS"});
    if (!h.path().empty() && h.path()[0] != '/') {
      invalid(e, child(f, "httpGet.path"), quote(h.path()), "must be an absolute path");
    }
  }
  if (p.has_tcp_socket()) {
    validate_int_or_string_port(e, p.tcp_socket().port(), child(f, "tcpSocket.port"), true);
  }
  check_non_negative(e, f, "initialDelaySeconds", p.initial_delay_seconds());
  check_non_negative(e, f, "timeoutSeconds", p.timeout_seconds());
  check_non_negative(e, f, "periodSeconds", p.period_seconds());
  check_non_negative(e, f, "successThreshold", p.success_threshold());
  check_non_negative(e, f, "failureThreshold", p.failure_threshold());
  if (success_must_be_one && p.success_threshold() > 1) {
    invalid(e, child(f, "successThreshold"), std::to_string(p.success_threshold()), "must be 1");
  }
  if (p.has_termination_grace_period_seconds() && p.termination_grace_period_seconds() <= 0) {
    invalid(e, child(f, "terminationGracePeriodSeconds"),
            std::to_string(p.termination_grace_period_seconds()), "must be greater than 0");
  }
}

bool standard_resource(const std::string& name) {
  return name == "cpu" || name == "memory" || name == "ephemeral-storage" || name == "pods" ||
         name.rfind("hugepages-", 0) == 0;
}

// Parses every quantity of a resource list; returns the parsed ones.
std::map<std::string, Quantity> validate_resource_list(
    Errors& e, const google::protobuf::Map<std::string, std::string>& list, const std::string& f) {
  std::map<std::string, Quantity> parsed;
  std::map<std::string, std::string> sorted(list.begin(), list.end());
  for (const auto& [name, text] : sorted) {
    std::string p = key(f, name);
    if (!standard_resource(name)) {
      if (name.find('/') == std::string::npos) {
        invalid(e, p, quote(name),
                "must be a standard resource type or fully qualified");
        continue;
      }
      auto reasons = qualified_name_errors(name);
      if (!reasons.empty()) {
        add_all(e, p, name, reasons);
        continue;
      }
    }
    StatusOr<Quantity> q = Quantity::parse(text);
    if (!q.is_ok()) {
      // Drop the `quantity "x": ` prefix: the value is shown already.
      std::string why = q.status().message();
      size_t colon = why.find("\": ");
      if (colon != std::string::npos) why = why.substr(colon + 3);
      invalid(e, p, quote(text), why);
      continue;
    }
    if (*q < Quantity()) {
      invalid(e, p, quote(text), "must be greater than or equal to 0");
      continue;
    }
    parsed.emplace(name, *q);
  }
  return parsed;
}

bool valid_env_name(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_name_char(c) || c == '-' || c == '.' || c == '_';
  });
}

void validate_container(Errors& e, const Container& c, const std::string& f,
                        const std::set<std::string>& volumes, bool init) {
  if (c.name().empty()) {
    required(e, child(f, "name"));
  } else {
    add_all(e, f, "name", c.name(), dns1123_label_errors(c.name()));
  }
  if (c.image().empty()) {
    required(e, child(f, "image"));
  } else if (std::isspace(static_cast<unsigned char>(c.image().front())) ||
             std::isspace(static_cast<unsigned char>(c.image().back()))) {
    invalid(e, child(f, "image"), quote(c.image()), "must not have leading or trailing whitespace");
  }
  std::set<std::string> port_names;
  for (int i = 0; i < c.ports_size(); ++i) {
    const ContainerPort& p = c.ports(i);
    std::string pp = index(child(f, "ports"), i);
    if (!p.name().empty()) {
      add_all(e, pp, "name", p.name(), port_name_errors(p.name()));
      if (!port_names.insert(p.name()).second) duplicate(e, child(pp, "name"), quote(p.name()));
    }
    if (p.container_port() == 0) {
      required(e, child(pp, "containerPort"));
    } else {
      check_port_range(e, child(pp, "containerPort"), p.container_port());
    }
    if (p.host_port() != 0) check_port_range(e, child(pp, "hostPort"), p.host_port());
    check_supported(e, child(pp, "protocol"), p.protocol(), {"TCP", "UDP", "SCTP"});
    if (!p.host_ip().empty() && !valid_ip(p.host_ip())) {
      invalid(e, child(pp, "hostIP"), quote(p.host_ip()), "must be a valid IP address");
    }
  }
  for (int i = 0; i < c.env_size(); ++i) {
    const EnvVar& v = c.env(i);
    std::string vp = child(index(child(f, "env"), i), "name");
    if (v.name().empty()) {
      required(e, vp);
    } else if (!valid_env_name(v.name())) {
      invalid(e, vp, quote(v.name()),
              "a valid environment variable name must consist of alphabetic characters, digits, "
              "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
              "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is "
              "'[-._a-zA-Z][-._a-zA-Z0-9]*')");
    }
  }
  std::string rp = child(f, "resources");
  auto limits = validate_resource_list(e, c.resources().limits(), child(rp, "limits"));
  auto requests = validate_resource_list(e, c.resources().requests(), child(rp, "requests"));
  for (const auto& [name, request] : requests) {
    auto limit = limits.find(name);
    if (limit != limits.end() && limit->second < request) {
      invalid(e, key(child(rp, "requests"), name), quote(request.to_string()),
              "must be less than or equal to " + name + " limit of " + limit->second.to_string());
    }
  }
  std::set<std::string> mount_paths;
  for (int i = 0; i < c.volume_mounts_size(); ++i) {
    const VolumeMount& m = c.volume_mounts(i);
    std::string mp = index(child(f, "volumeMounts"), i);
    if (m.name().empty()) {
      required(e, child(mp, "name"));
    } else if (!volumes.count(m.name())) {
      e.push_back({child(mp, "name"), std::string(kNotFound), quote(m.name()), ""});
    }
    if (m.mount_path().empty()) {
      required(e, child(mp, "mountPath"));
    } else if (!mount_paths.insert(m.mount_path()).second) {
      invalid(e, child(mp, "mountPath"), quote(m.mount_path()), "must be unique");
    }
    if (m.sub_path().find("..") != std::string::npos || (!m.sub_path().empty() && m.sub_path()[0] == '/')) {
      invalid(e, child(mp, "subPath"), quote(m.sub_path()),
              "must be a relative path without '..'");
    }
  }
  if (c.has_liveness_probe()) validate_probe(e, c.liveness_probe(), child(f, "livenessProbe"), true);
  if (c.has_readiness_probe()) {
    validate_probe(e, c.readiness_probe(), child(f, "readinessProbe"), false);
  }
  if (c.has_startup_probe()) validate_probe(e, c.startup_probe(), child(f, "startupProbe"), true);
  if (init) {
    for (auto [present, name] : {std::pair{c.has_liveness_probe(), "livenessProbe"},
                                 std::pair{c.has_readiness_probe(), "readinessProbe"},
                                 std::pair{c.has_startup_probe(), "startupProbe"}}) {
      if (present) forbidden(e, child(f, name), "may not be set for init containers");
    }
  }
  check_supported(e, child(f, "imagePullPolicy"), c.image_pull_policy(),
                  {"Always", "IfNotPresent", "Never"});
}

void validate_volume(Errors& e, const Volume& v, const std::string& f) {
  if (v.name().empty()) {
    required(e, child(f, "name"));
  } else {
    add_all(e, f, "name", v.name(), dns1123_label_errors(v.name()));
  }
  int sources = 0;
  auto source = [&](bool present, std::string_view name) {
    if (!present) return false;
    if (++sources > 1) {
      forbidden(e, child(f, name), "may not specify more than 1 volume type");
      return false;
    }
    return true;
  };
  if (source(v.has_empty_dir(), "emptyDir")) {
    check_supported(e, child(f, "emptyDir.medium"), v.empty_dir().medium(), {"Memory", "HugePages"});
    if (!v.empty_dir().size_limit().empty()) {
      StatusOr<Quantity> q = Quantity::parse(v.empty_dir().size_limit());
      if (!q.is_ok()) {
        invalid(e, child(f, "emptyDir.sizeLimit"), quote(v.empty_dir().size_limit()),
                "must be a valid quantity");
      }
    }
  }
  if (source(v.has_host_path(), "hostPath")) {
    if (v.host_path().path().empty()) required(e, child(f, "hostPath.path"));
    check_supported(e, child(f, "hostPath.type"), v.host_path().type(),
                    {"DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                     "CharDevice", "BlockDevice"});
  }
  if (source(v.has_shared(), "shared")) {
    if (v.shared().name().empty()) required(e, child(f, "shared.name"));
  }
  if (source(v.has_nfs(), "nfs")) {
    if (v.nfs().server().empty()) required(e, child(f, "nfs.server"));
    if (v.nfs().path().empty()) {
      required(e, child(f, "nfs.path"));
    } else if (v.nfs().path()[0] != '/') {
      invalid(e, child(f, "nfs.path"), quote(v.nfs().path()), "must be an absolute path");
    }
  }
  if (sources == 0) required(e, f, "must specify a volume type");
}

void validate_pod_spec(Errors& e, const PodSpec& s, const std::string& f) {
  std::set<std::string> volumes;
  for (int i = 0; i < s.volumes_size(); ++i) {
    std::string vp = index(child(f, "volumes"), i);
    validate_volume(e, s.volumes(i), vp);
    if (!s.volumes(i).name().empty() && !volumes.insert(s.volumes(i).name()).second) {
      duplicate(e, child(vp, "name"), quote(s.volumes(i).name()));
    }
  }
  std::set<std::string> names;
  auto containers = [&](const google::protobuf::RepeatedPtrField<Container>& list,
                        std::string_view field, bool init) {
    for (int i = 0; i < list.size(); ++i) {
      std::string cp = index(child(f, field), i);
      validate_container(e, list[i], cp, volumes, init);
      if (!list[i].name().empty() && !names.insert(list[i].name()).second) {
        duplicate(e, child(cp, "name"), quote(list[i].name()));
      }
    }
  };
  if (s.containers_size() == 0) required(e, child(f, "containers"));
  containers(s.init_containers(), "initContainers", true);
  containers(s.containers(), "containers", false);
  check_supported(e, child(f, "restartPolicy"), s.restart_policy(),
                  {"Always", "OnFailure", "Never"});
  check_supported(e, child(f, "dnsPolicy"), s.dns_policy(),
                  {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"});
  if (s.has_termination_grace_period_seconds()) {
    check_non_negative(e, f, "terminationGracePeriodSeconds",
                       s.termination_grace_period_seconds());
  }
  if (s.has_active_deadline_seconds() &&
      (s.active_deadline_seconds() < 1 || s.active_deadline_seconds() > 2147483647)) {
    invalid(e, child(f, "activeDeadlineSeconds"), std::to_string(s.active_deadline_seconds()),
            "must be between 1 and 2147483647, inclusive");
  }
  validate_labels(e, s.node_selector(), f, "nodeSelector");
  if (!s.service_account_name().empty()) {
    add_all(e, f, "serviceAccountName", s.service_account_name(),
            dns1123_subdomain_errors(s.service_account_name()));
  }
  if (!s.node_name().empty()) {
    add_all(e, f, "nodeName", s.node_name(), dns1123_subdomain_errors(s.node_name()));
  }
  if (!s.hostname().empty()) {
    add_all(e, f, "hostname", s.hostname(), dns1123_label_errors(s.hostname()));
  }
  if (!s.subdomain().empty()) {
    add_all(e, f, "subdomain", s.subdomain(), dns1123_label_errors(s.subdomain()));
  }
}

// ------------------------------------------------------------- kinds

// `spec_kept`: an update whose spec is byte for byte the stored one's, which
// was validated when written: not validated again (as Kubernetes ratchets
// validation of unchanged fields). Most pod updates are status writes.
void validate_pod(Errors& e, const Pod& pod, const ObjectMeta* old_meta, bool spec_kept) {
  validate_meta(e, pod.metadata(), true, NameRule::kSubdomain, "metadata", true, old_meta);
  if (!spec_kept) validate_pod_spec(e, pod.spec(), "spec");
}

void validate_rc(Errors& e, const ReplicationController& rc, const ObjectMeta* old_meta) {
  validate_meta(e, rc.metadata(), true, NameRule::kSubdomain, "metadata", true, old_meta);
  const ReplicationControllerSpec& s = rc.spec();
  if (s.has_replicas()) check_non_negative(e, "spec.replicas", s.replicas());
  check_non_negative(e, "spec.minReadySeconds", s.min_ready_seconds());
  if (s.selector().empty()) {
    required(e, "spec.selector");
  } else {
    validate_labels(e, s.selector(), "spec", "selector");
  }
  if (!s.has_template_()) {
    required(e, "spec.template");
    return;
  }
  const PodTemplateSpec& t = s.template_();
  validate_meta(e, t.metadata(), true, NameRule::kSubdomain, "spec.template.metadata", false);
  if (!s.selector().empty()) {
    bool matches = std::all_of(s.selector().begin(), s.selector().end(), [&](const auto& kv) {
      auto it = t.metadata().labels().find(kv.first);
      return it != t.metadata().labels().end() && it->second == kv.second;
    });
    if (!matches) {
      invalid(e, "spec.template.metadata.labels", go_map(t.metadata().labels()),
              "`selector` does not match template `labels`");
    }
  }
  validate_pod_spec(e, t.spec(), "spec.template.spec");
  if (!t.spec().restart_policy().empty() && t.spec().restart_policy() != "Always") {
    check_supported(e, "spec.template.spec.restartPolicy", t.spec().restart_policy(), {"Always"});
  }
  if (t.spec().has_active_deadline_seconds()) {
    forbidden(e, "spec.template.spec.activeDeadlineSeconds",
              "activeDeadlineSeconds in ReplicationController is not Supported");
  }
}

void validate_service(Errors& e, const Service& svc, const ObjectMeta* old_meta) {
  validate_meta(e, svc.metadata(), true, NameRule::kLabel, "metadata", true, old_meta);
  const ServiceSpec& s = svc.spec();
  bool headless = s.cluster_ip() == "None";
  if (s.ports_size() == 0 && !headless) required(e, "spec.ports");
  std::set<std::string> names;
  std::set<std::string> keys;
  for (int i = 0; i < s.ports_size(); ++i) {
    const ServicePort& p = s.ports(i);
    std::string pp = index("spec.ports", i);
    if (p.name().empty()) {
      if (s.ports_size() > 1) required(e, child(pp, "name"));
    } else {
      add_all(e, pp, "name", p.name(), dns1123_label_errors(p.name()));
      if (!names.insert(p.name()).second) duplicate(e, child(pp, "name"), quote(p.name()));
    }
    check_port_range(e, child(pp, "port"), p.port());
    check_supported(e, child(pp, "protocol"), p.protocol(), {"TCP", "UDP", "SCTP"});
    validate_int_or_string_port(e, p.target_port(), child(pp, "targetPort"), false);
    if (p.node_port() != 0) {
      if (s.type() != "NodePort" && s.type() != "LoadBalancer") {
        forbidden(e, child(pp, "nodePort"),
                  "may not be used when `type` is '" +
                      (s.type().empty() ? std::string("ClusterIP") : s.type()) + "'");
      } else {
        check_port_range(e, child(pp, "nodePort"), p.node_port());
      }
    }
    std::string k = std::to_string(p.port()) + "/" + (p.protocol().empty() ? "TCP" : p.protocol());
    if (p.port() != 0 && !keys.insert(k).second) duplicate(e, pp, quote(k));
  }
  validate_labels(e, s.selector(), "spec", "selector");
  if (!s.cluster_ip().empty() && !headless && !valid_ip(s.cluster_ip())) {
    invalid(e, "spec.clusterIP", quote(s.cluster_ip()),
            "must be empty, 'None', or a valid IP address");
  }
  for (int i = 0; i < s.cluster_ips_size(); ++i) {
    const std::string& ip = s.cluster_ips(i);
    if (ip != "None" && !valid_ip(ip)) {
      invalid(e, index("spec.clusterIPs", i), quote(ip), "must be 'None' or a valid IP address");
    }
  }
  for (int i = 0; i < s.external_ips_size(); ++i) {
    if (!valid_ip(s.external_ips(i))) {
      invalid(e, index("spec.externalIPs", i), quote(s.external_ips(i)),
              "must be a valid IP address");
    }
  }
  check_supported(e, "spec.type", s.type(), {"ClusterIP", "NodePort", "LoadBalancer"});
  check_supported(e, "spec.sessionAffinity", s.session_affinity(), {"None", "ClientIP"});
  if (s.has_session_affinity_config()) {
    if (s.session_affinity() != "ClientIP") {
      forbidden(e, "spec.sessionAffinityConfig",
                "must not be set when session affinity is " +
                    (s.session_affinity().empty() ? std::string("None") : s.session_affinity()));
    } else if (s.session_affinity_config().client_ip().has_timeout_seconds()) {
      int32_t t = s.session_affinity_config().client_ip().timeout_seconds();
      if (t <= 0 || t > 86400) {
        invalid(e, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", std::to_string(t),
                "must be greater than 0 and less than 86400");
      }
    }
  }
}

void validate_endpoints(Errors& e, const Endpoints& ep, const ObjectMeta* old_meta) {
  validate_meta(e, ep.metadata(), true, NameRule::kSubdomain, "metadata", true, old_meta);
  for (int i = 0; i < ep.subsets_size(); ++i) {
    const EndpointSubset& s = ep.subsets(i);
    std::string sp = index("subsets", i);
    auto addresses = [&](const google::protobuf::RepeatedPtrField<EndpointAddress>& list,
                         std::string_view field) {
      for (int j = 0; j < list.size(); ++j) {
        std::string ap = child(index(child(sp, field), j), "ip");
        if (list[j].ip().empty()) {
          required(e, ap);
        } else if (!valid_ip(list[j].ip())) {
          invalid(e, ap, quote(list[j].ip()), "must be a valid IP address");
        }
      }
    };
    addresses(s.addresses(), "addresses");
    addresses(s.not_ready_addresses(), "notReadyAddresses");
    std::set<std::string> names;
    for (int j = 0; j < s.ports_size(); ++j) {
      const EndpointPort& p = s.ports(j);
      std::string pp = index(child(sp, "ports"), j);
      if (p.name().empty()) {
        if (s.ports_size() > 1) required(e, child(pp, "name"));
      } else {
        add_all(e, pp, "name", p.name(), dns1123_label_errors(p.name()));
        if (!names.insert(p.name()).second) duplicate(e, child(pp, "name"), quote(p.name()));
      }
      check_port_range(e, child(pp, "port"), p.port());
      check_supported(e, child(pp, "protocol"), p.protocol(), {"TCP", "UDP", "SCTP"});
    }
  }
}

// A node's quantities are the same in nearly every status report: those are
// not parsed again (see validate_meta).
void validate_node(Errors& e, const Node& node, const Node* old) {
  validate_meta(e, node.metadata(), false, NameRule::kSubdomain, "metadata", true,
                old != nullptr ? &old->metadata() : nullptr);
  for (int i = 0; i < node.spec().taints_size(); ++i) {
    const Taint& t = node.spec().taints(i);
    std::string tp = index("spec.taints", i);
    if (t.key().empty()) {
      required(e, child(tp, "key"));
    } else {
      add_all(e, tp, "key", t.key(), qualified_name_errors(t.key()));
    }
    add_all(e, tp, "value", t.value(), label_value_errors(t.value()));
    check_supported(e, child(tp, "effect"), t.effect(), {"NoSchedule", "PreferNoSchedule", "NoExecute"},
                    false);
  }
  if (old == nullptr || !same_labels(node.status().capacity(), old->status().capacity())) {
    validate_resource_list(e, node.status().capacity(), "status.capacity");
  }
  if (old == nullptr || !same_labels(node.status().allocatable(), old->status().allocatable())) {
    validate_resource_list(e, node.status().allocatable(), "status.allocatable");
  }
}

void validate_namespace(Errors& e, const Namespace& ns, const ObjectMeta* old_meta) {
  validate_meta(e, ns.metadata(), false, NameRule::kLabel, "metadata", true, old_meta);
}

void validate_event(Errors& e, const Event& ev, const ObjectMeta* old_meta) {
  validate_meta(e, ev.metadata(), true, NameRule::kSubdomain, "metadata", true, old_meta);
  check_supported(e, "type", ev.type(), {"Normal", "Warning"});
  if (ev.count() < 0) check_non_negative(e, "count", ev.count());
  if (!ev.involved_object().namespace_().empty() && !ev.metadata().namespace_().empty() &&
      ev.involved_object().namespace_() != ev.metadata().namespace_()) {
    invalid(e, "involvedObject.namespace", quote(ev.involved_object().namespace_()),
            "does not match event.namespace");
  }
}

// coordination.k8s.io/v1 Lease, as ValidateLeaseSpec checks it.
void validate_lease(Errors& e, const Lease& l, const ObjectMeta* old_meta) {
  validate_meta(e, l.metadata(), true, NameRule::kSubdomain, "metadata", true, old_meta);
  const LeaseSpec& s = l.spec();
  if (s.has_lease_duration_seconds() && s.lease_duration_seconds() <= 0) {
    invalid(e, "spec.leaseDurationSeconds", std::to_string(s.lease_duration_seconds()),
            "must be greater than 0");
  }
  if (s.has_lease_transitions() && s.lease_transitions() < 0) {
    invalid(e, "spec.leaseTransitions", std::to_string(s.lease_transitions()),
            "must be greater than or equal to 0");
  }
}

// discovery.k8s.io/v1 EndpointSlice, as ValidateEndpointSlice checks it: an
// IPv4 or IPv6 slice holds IPs of that family, at most 100 addresses an
// endpoint and 1,000 endpoints and 20,000 ports a slice; addressType cannot
// change.
void validate_endpoint_slice(Errors& e, const EndpointSlice& es, const EndpointSlice* old) {
  validate_meta(e, es.metadata(), true, NameRule::kSubdomain, "metadata", true,
                old != nullptr ? &old->metadata() : nullptr);
  const std::string& type = es.address_type();
  if (type.empty()) {
    required(e, "addressType");
  } else {
    check_supported(e, "addressType", type, {"IPv4", "IPv6", "FQDN"});
  }
  if (old != nullptr && old->address_type() != type) {
    invalid(e, "addressType", quote(type), "field is immutable");
  }
  if (es.endpoints_size() > 1000) {
    too_many(e, "endpoints", es.endpoints_size(), 1000);
  }
  for (int i = 0; i < es.endpoints_size(); ++i) {
    const Endpoint& ep = es.endpoints(i);
    std::string f = index("endpoints", i);
    if (ep.addresses_size() == 0) {
      required(e, child(f, "addresses"), "must contain at least 1 address");
    } else if (ep.addresses_size() > 100) {
      too_many(e, child(f, "addresses"), ep.addresses_size(), 100);
    }
    for (int j = 0; j < ep.addresses_size(); ++j) {
      const std::string& a = ep.addresses(j);
      std::string af = index(child(f, "addresses"), j);
      if (type == "FQDN") {
        add_all(e, af, a, dns1123_subdomain_errors(a));
      } else if (type == "IPv4" || type == "IPv6") {
        bool v6 = a.find(':') != std::string::npos;
        if (!valid_ip(a) || v6 != (type == "IPv6")) {
          invalid(e, af, quote(a),
                  type == "IPv4" ? "must be a valid IPv4 address" : "must be a valid IPv6 address");
        }
      }
    }
    if (ep.has_hostname()) {
      add_all(e, f, "hostname", ep.hostname(), dns1123_label_errors(ep.hostname()));
    }
    if (ep.has_node_name()) {
      add_all(e, f, "nodeName", ep.node_name(), dns1123_subdomain_errors(ep.node_name()));
    }
  }
  if (es.ports_size() > 20000) too_many(e, "ports", es.ports_size(), 20000);
  std::set<std::string> names;
  for (int i = 0; i < es.ports_size(); ++i) {
    const EndpointPort& p = es.ports(i);
    std::string pp = index("ports", i);
    if (!p.name().empty()) add_all(e, pp, "name", p.name(), dns1123_label_errors(p.name()));
    if (!names.insert(p.name()).second) duplicate(e, child(pp, "name"), quote(p.name()));
    if (p.port() != 0) check_port_range(e, child(pp, "port"), p.port());
    check_supported(e, child(pp, "protocol"), p.protocol(), {"TCP", "UDP", "SCTP"});
  }
}

void immutable(Errors& e, std::string_view f, const std::string& old_value,
               const std::string& new_value) {
  if (old_value != new_value) invalid(e, std::string(f), quote(new_value), "field is immutable");
}

// `object` checked on its own, or as an update of `old` (of the same kind):
// see validate_meta.
Errors validate_object(const google::protobuf::Message& object, const KindInfo& k,
                       const google::protobuf::Message* old, bool pod_spec_kept = false) {
  Errors e;
  const ObjectMeta* om = old != nullptr ? &k.meta(*old) : nullptr;
  switch (k.kind) {
    case Kind::kPod:
      validate_pod(e, static_cast<const Pod&>(object), om, old != nullptr && pod_spec_kept);
      break;
    case Kind::kReplicationController:
      validate_rc(e, static_cast<const ReplicationController&>(object), om);
      break;
    case Kind::kService: validate_service(e, static_cast<const Service&>(object), om); break;
    case Kind::kEndpoints: validate_endpoints(e, static_cast<const Endpoints&>(object), om); break;
    case Kind::kNode:
      validate_node(e, static_cast<const Node&>(object), static_cast<const Node*>(old));
      break;
    case Kind::kNamespace: validate_namespace(e, static_cast<const Namespace&>(object), om); break;
    case Kind::kEvent: validate_event(e, static_cast<const Event&>(object), om); break;
    case Kind::kLease: validate_lease(e, static_cast<const Lease&>(object), om); break;
    case Kind::kEndpointSlice:
      validate_endpoint_slice(e, static_cast<const EndpointSlice&>(object),
                              static_cast<const EndpointSlice*>(old));
      break;
  }
  return e;
}

}  // namespace

std::string FieldError::to_string() const {
  std::string body = type;
  if ((type == kInvalid || type == kUnsupported || type == kDuplicate || type == kNotFound ||
       type == kTooMany) &&
      !value.empty()) {
    body += ": " + value;
  }
  if (!detail.empty()) body += ": " + detail;
  return field.empty() ? body : field + ": " + body;
}

std::vector<std::string> qualified_name_errors(std::string_view key) {
  std::vector<std::string> errs;
  size_t slash = key.find('/');
  std::string_view name = key;
  if (slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) {
      errs.push_back("a qualified name " + std::string(kQualifiedNameFormat) +
                     " with an optional DNS subdomain prefix and '/' (e.g. "
                     "'example.com/MyName')");
      return errs;
    }
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) {
      errs.push_back("prefix part must be non-empty");
    } else {
      for (const std::string& r : dns1123_subdomain_errors(prefix)) errs.push_back("prefix part " + r);
    }
  }
  if (name.empty()) {
    errs.push_back("name part must be non-empty");
  } else {
    if (name.size() > 63) errs.push_back("name part must be no more than 63 characters");
    if (!qualified_name_part_ok(name)) {
      errs.push_back("name part " + std::string(kQualifiedNameFormat));
    }
  }
  return errs;
}

std::vector<std::string> label_value_errors(std::string_view value) {
  std::vector<std::string> errs;
  if (value.empty()) return errs;
  if (value.size() > 63) errs.push_back("must be no more than 63 characters");
  if (!qualified_name_part_ok(value)) {
    errs.push_back(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
        "'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
  }
  return errs;
}

std::vector<FieldError> validate(const google::protobuf::Message& object) {
  const KindInfo* k = kind_of(object);
  return k != nullptr ? validate_object(object, *k, nullptr) : Errors{};
}

namespace {

// A pod's spec may change only in its containers' images and
// activeDeadlineSeconds (and nodeName, set once by binding): compared with
// those masked out.
void check_pod_spec_update(Errors& e, const PodSpec& os, const PodSpec& ns) {
  PodSpec a = os, b = ns;
  bool same_shape = a.containers_size() == b.containers_size() &&
                    a.init_containers_size() == b.init_containers_size();
  if (same_shape) {
    for (int i = 0; i < a.containers_size(); ++i) {
      a.mutable_containers(i)->clear_image();
      b.mutable_containers(i)->clear_image();
    }
    for (int i = 0; i < a.init_containers_size(); ++i) {
      a.mutable_init_containers(i)->clear_image();
      b.mutable_init_containers(i)->clear_image();
    }
    a.clear_active_deadline_seconds();
    b.clear_active_deadline_seconds();
    // Binding (the scheduler's pods/binding) sets spec.nodeName once.
    if (a.node_name().empty()) a.set_node_name(b.node_name());
  }
  if (!same_shape || !same_bytes(a, b)) {
    forbidden(e, "spec",
              "pod updates may not change fields other than `spec.containers[*].image`, "
              "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`");
  }
}

}  // namespace

std::vector<FieldError> validate_update(const google::protobuf::Message& old_object,
                                        const google::protobuf::Message& updated) {
  const KindInfo* k = kind_of(updated);
  if (k == nullptr) return {};
  if (kind_of(old_object) != k) return validate_object(updated, *k, nullptr);
  // Most pod updates (status writes) leave the spec as it was: the same bytes
  // need neither validating again nor the masked comparison (which copies
  // both specs: ~8% of the large scenario's start-up).
  const bool pod_spec_kept =
      k->kind == Kind::kPod && same_bytes(static_cast<const Pod&>(old_object).spec(),
                                          static_cast<const Pod&>(updated).spec());
  Errors e = validate_object(updated, *k, &old_object, pod_spec_kept);
  const ObjectMeta& om = k->meta(old_object);
  const ObjectMeta& nm = k->meta(updated);
  immutable(e, "metadata.name", om.name(), nm.name());
  immutable(e, "metadata.namespace", om.namespace_(), nm.namespace_());
  if (!om.uid().empty()) immutable(e, "metadata.uid", om.uid(), nm.uid());
  if (om.has_creation_timestamp() &&
      om.creation_timestamp().nanos() != nm.creation_timestamp().nanos()) {
    invalid(e, "metadata.creationTimestamp", "", "field is immutable");
  }
  if (k->kind == Kind::kPod) {
    const PodSpec& os = static_cast<const Pod&>(old_object).spec();
    const PodSpec& ns = static_cast<const Pod&>(updated).spec();
    if (!pod_spec_kept) check_pod_spec_update(e, os, ns);
    if (os.has_active_deadline_seconds()) {
      if (!ns.has_active_deadline_seconds()) {
        invalid(e, "spec.activeDeadlineSeconds", "nil",
                "must not update from a positive integer to nil value");
      } else if (ns.active_deadline_seconds() > os.active_deadline_seconds()) {
        invalid(e, "spec.activeDeadlineSeconds", std::to_string(ns.active_deadline_seconds()),
                "must be less than or equal to previous value");
      }
    }
  } else if (k->kind == Kind::kService) {
    const ServiceSpec& os = static_cast<const Service&>(old_object).spec();
    const ServiceSpec& ns = static_cast<const Service&>(updated).spec();
    if (!os.cluster_ip().empty()) immutable(e, "spec.clusterIP", os.cluster_ip(), ns.cluster_ip());
  } else if (k->kind == Kind::kNode) {
    const NodeSpec& os = static_cast<const Node&>(old_object).spec();
    const NodeSpec& ns = static_cast<const Node&>(updated).spec();
    if (!os.pod_cidr().empty()) immutable(e, "spec.podCIDR", os.pod_cidr(), ns.pod_cidr());
  }
  return e;
}

flotilla::Status invalid_status(const google::protobuf::Message& object,
                                const std::vector<FieldError>& errors) {
  if (errors.empty()) return flotilla::Status::ok();
  const KindInfo* k = kind_of(object);
  std::string kind = k ? std::string(k->name) : std::string(object.GetDescriptor()->name());
  std::string name = k ? k->meta(object).name() : std::string();
  std::string message = kind + " " + quote(name) + " is invalid: ";
  if (errors.size() == 1) {
    message += errors[0].to_string();
  } else {
    message += "[";
    for (size_t i = 0; i < errors.size(); ++i) {
      if (i) message += ", ";
      message += errors[i].to_string();
    }
    message += "]";
  }
  return invalid_error(message);
}

}  // namespace flotilla::api
