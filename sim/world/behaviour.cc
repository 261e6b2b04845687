#include "sim/world/behaviour.h"

#include <yaml-cpp/yaml.h>

#include <set>

namespace flotilla::sim {

namespace {

std::string where(const YAML::Node& n, const std::string& path) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return path;
  return path + " (line " + std::to_string(m.line + 1) + ", column " +
         std::to_string(m.column + 1) + ")";
}

Status error_at(const YAML::Node& n, const std::string& path, const std::string& what) {
  return invalid_error(where(n, path) + ": " + what);
}

StatusOr<std::string> scalar(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return error_at(n, path, "expected a string");
  return n.Scalar();
}

StatusOr<int64_t> integer(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return error_at(n, path, "expected an integer");
  try {
    return n.as<int64_t>();
  } catch (const YAML::Exception&) {
    return error_at(n, path, "expected an integer, got \"" + n.Scalar() + "\"");
  }
}

StatusOr<bool> boolean(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return error_at(n, path, "expected true or false");
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    return error_at(n, path, "expected true or false, got \"" + n.Scalar() + "\"");
  }
}

StatusOr<int64_t> bytes(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return error_at(n, path, "expected a size such as 64Mi");
  auto v = parse_number_with_suffix(n.Scalar());
  if (!v.is_ok() || *v < 0) {
    return error_at(n, path, "expected a size such as 64Mi, got \"" + n.Scalar() + "\"");
  }
  return static_cast<int64_t>(*v);
}

Status check_keys(const YAML::Node& n, const std::string& path,
                  const std::set<std::string>& allowed) {
  for (const auto& kv : n) {
    std::string key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return error_at(kv.first, path + "." + key, "unknown field; expected one of: " + list);
    }
  }
  return Status::ok();
}

}  // namespace

bool BehaviourSpec::matches_image(const std::string& image_name) const {
  if (!image.empty() && image.back() == '*') {
    return image_name.compare(0, image.size() - 1, image, 0, image.size() - 1) == 0;
  }
  return image_name == image;
}

StatusOr<BehaviourSpec> parse_behaviour(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return error_at(node, path, "expected a mapping");
  FLOTILLA_RETURN_IF_ERROR(check_keys(
      node, path,
      {"image", "selector", "exit_after", "exit_code", "crash_loop", "hang_after", "ready_after",
       "memory", "ignore_sigterm"}));
  BehaviourSpec b;
  if (auto n = node["image"]) {
    auto s = scalar(n, path + ".image");
    if (!s.is_ok()) return s.status();
    b.image = *s;
  }
  if (auto n = node["selector"]) {
    auto s = scalar(n, path + ".selector");
    if (!s.is_ok()) return s.status();
    auto sel = api::LabelSelector::parse(*s);
    if (!sel.is_ok()) return error_at(n, path + ".selector", sel.status().message());
    b.selector_text = *s;
    b.selector = std::move(*sel);
    b.has_selector = true;
  }
  if (auto n = node["exit_after"]) {
    auto d = parse_duration_distribution(n, path + ".exit_after");
    if (!d.is_ok()) return d.status();
    b.exit_after = *d;
  }
  if (auto n = node["exit_code"]) {
    auto v = integer(n, path + ".exit_code");
    if (!v.is_ok()) return v.status();
    if (*v < 0 || *v > 255) return error_at(n, path + ".exit_code", "must be in 0..255");
    if (!b.exit_after && !node["crash_loop"]) {
      return error_at(n, path + ".exit_code", "needs exit_after (or crash_loop)");
    }
    b.exit_code = static_cast<int>(*v);
  }
  if (auto n = node["crash_loop"]) {
    if (b.exit_after) return error_at(n, path + ".crash_loop", "cannot be combined with exit_after");
    b.exit_after = Distribution::constant(1e9);
    b.exit_code = node["exit_code"] ? b.exit_code : 1;
    if (n.IsScalar()) {
      auto v = boolean(n, path + ".crash_loop");
      if (!v.is_ok()) return v.status();
      if (!*v) b.exit_after.reset();
    } else if (n.IsMap()) {
      FLOTILLA_RETURN_IF_ERROR(check_keys(n, path + ".crash_loop", {"after", "exit_code"}));
      if (auto a = n["after"]) {
        auto d = parse_duration_distribution(a, path + ".crash_loop.after");
        if (!d.is_ok()) return d.status();
        b.exit_after = *d;
      }
      if (auto c = n["exit_code"]) {
        auto v = integer(c, path + ".crash_loop.exit_code");
        if (!v.is_ok()) return v.status();
        if (*v < 0 || *v > 255) return error_at(c, path + ".crash_loop.exit_code", "must be in 0..255");
        b.exit_code = static_cast<int>(*v);
      }
    } else {
      return error_at(n, path + ".crash_loop", "expected true or {after: ..., exit_code: ...}");
    }
  }
  if (auto n = node["hang_after"]) {
    auto d = parse_duration_distribution(n, path + ".hang_after");
    if (!d.is_ok()) return d.status();
    b.hang_after = *d;
  }
  if (auto n = node["ready_after"]) {
    auto d = parse_duration_distribution(n, path + ".ready_after");
    if (!d.is_ok()) return d.status();
    b.ready_after = *d;
  }
  if (auto n = node["memory"]) {
    const std::string mp = path + ".memory";
    if (n.IsScalar()) {
      auto v = bytes(n, mp);
      if (!v.is_ok()) return v.status();
      b.memory_initial_bytes = *v;
    } else if (n.IsMap()) {
      FLOTILLA_RETURN_IF_ERROR(check_keys(n, mp, {"initial", "growth_per_minute"}));
      if (auto i = n["initial"]) {
        auto v = bytes(i, mp + ".initial");
        if (!v.is_ok()) return v.status();
        b.memory_initial_bytes = *v;
      }
      if (auto g = n["growth_per_minute"]) {
        auto v = bytes(g, mp + ".growth_per_minute");
        if (!v.is_ok()) return v.status();
        b.memory_growth_bytes_per_minute = *v;
      }
    } else {
      return error_at(n, mp, "expected a size (64Mi) or {initial: ..., growth_per_minute: ...}");
    }
  }
  if (auto n = node["ignore_sigterm"]) {
    auto v = boolean(n, path + ".ignore_sigterm");
    if (!v.is_ok()) return v.status();
    b.ignore_sigterm = *v;
  }
  return b;
}

StatusOr<std::vector<BehaviourSpec>> parse_behaviours(const YAML::Node& node,
                                                      const std::string& path) {
  std::vector<BehaviourSpec> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsSequence()) return error_at(node, path, "expected a list of behaviours");
  for (size_t i = 0; i < node.size(); ++i) {
    auto b = parse_behaviour(node[i], path + "[" + std::to_string(i) + "]");
    if (!b.is_ok()) return b.status();
    out.push_back(std::move(*b));
  }
  return out;
}

}  // namespace flotilla::sim
