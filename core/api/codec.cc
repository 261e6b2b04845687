// Reflection-based YAML/JSON <-> protobuf codec. Decoding walks the YAML node
// tree next to the message descriptor; encoding builds a small ordered value
// tree that is printed as JSON or block-style YAML. yaml-cpp throws; nothing
// thrown leaves this file.
#include "core/api/codec.h"

#include <google/protobuf/struct.pb.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "core/util/time.h"

namespace flotilla::api {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

// ------------------------------------------------------------------ helpers

std::string join_path(std::string_view base, std::string_view field) {
  if (base.empty()) return std::string(field);
  std::string out(base);
  out += '.';
  out += field;
  return out;
}

std::string index_path(std::string_view base, size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

std::string key_path(std::string_view base, std::string_view key) {
  return std::string(base) + "[" + std::string(key) + "]";
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

bool is_time(const pb::Descriptor* d) { return d->full_name() == "flotilla.api.Time"; }
bool is_int_or_string(const pb::Descriptor* d) {
  return d->full_name() == "flotilla.api.IntOrString";
}

// Formats a Time with second precision, or with the nanoseconds when it has any.
std::string format_time(int64_t nanos) {
  int64_t secs = nanos >= 0 ? nanos / 1000000000 : -((-(nanos + 1)) / 1000000000) - 1;
  int64_t frac = nanos - secs * 1000000000;
  std::string s = format_rfc3339(time_from_nanos(secs * 1000000000));
  if (frac != 0 && !s.empty() && s.back() == 'Z') {
    char buf[16];
    std::snprintf(buf, sizeof buf, ".%09lld", static_cast<long long>(frac));
    std::string f(buf);
    while (f.back() == '0') f.pop_back();
    s.insert(s.size() - 1, f);
  }
  return s;
}

// ----------------------------------------------------------------- decoding

// Well-formed UTF-8: no stray continuation bytes, overlong forms, surrogates
// or code points past U+10FFFF.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

class Decoder {
 public:
  explicit Decoder(std::vector<DecodeWarning>* warnings) : warnings_(warnings) {}

  flotilla::Status message(const YAML::Node& node, pb::Message* msg, const std::string& path) {
    if (node.IsNull()) return flotilla::Status::ok();
    const pb::Descriptor* d = msg->GetDescriptor();
    if (is_time(d)) return time(node, msg, path);
    if (is_int_or_string(d)) return int_or_string(node, msg, path);
    if (d == pb::Value::descriptor()) {
      any_value(node, static_cast<pb::Value*>(msg));
      return flotilla::Status::ok();
    }
    if (!node.IsMap()) return error(node, path, "expected a mapping, got " + describe(node));
    // A repeated key is an error, as in Kubernetes: yaml-cpp keeps both, and
    // lookups (kind, node["cluster"]) and decoding would disagree on which wins.
    std::map<std::string, int, std::less<>> seen;  // field name -> 1-based line
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: it-> returns a proxy that dies at the end of the statement.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) return error(key, path, "expected a field name, got " + describe(key));
      const std::string& name = key.Scalar();
      auto [first, inserted] = seen.emplace(name, key.Mark().line + 1);
      if (!inserted) {
        return error(key, join_path(path, name),
                     "duplicate field (already given at line " + std::to_string(first->second) + ")");
      }
      const FD* field = find_field(d, name);
      std::string field_path = join_path(path, name);
      if (field == nullptr) {
        if (warnings_ != nullptr) {
          DecodeWarning w{field_path, "unknown field", 0, 0};
          YAML::Mark m = key.Mark();
          if (m.line >= 0) {
            w.line = m.line + 1;
            w.column = m.column + 1;
          }
          warnings_->push_back(std::move(w));
        }
        continue;
      }
      FLOTILLA_RETURN_IF_ERROR(this->field(value, msg, field, field_path));
    }
    return flotilla::Status::ok();
  }

 private:
  // google.protobuf.Value holds any YAML as is: free-form parts of a schema
  // that a more specific parser reads later.
  static void any_value(const YAML::Node& node, pb::Value* out) {
    if (!node.IsDefined() || node.IsNull()) {
      out->set_null_value(pb::NULL_VALUE);
    } else if (node.IsScalar()) {
      const std::string& text = node.Scalar();
      if (node.Tag() == "!") {  // quoted: always a string
        out->set_string_value(text);
      } else if (text == "true" || text == "false") {
        out->set_bool_value(text == "true");
      } else {
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (!text.empty() && end == text.c_str() + text.size() && std::isfinite(v)) {
          out->set_number_value(v);
        } else {
          out->set_string_value(text);
        }
      }
    } else if (node.IsSequence()) {
      pb::ListValue* list = out->mutable_list_value();
      for (const auto& item : node) any_value(item, list->add_values());
    } else if (node.IsMap()) {
      pb::Struct* st = out->mutable_struct_value();
      for (auto it = node.begin(); it != node.end(); ++it) {
        any_value(it->second, &(*st->mutable_fields())[it->first.Scalar()]);
      }
    }
  }

  static const FD* find_field(const pb::Descriptor* d, const std::string& json_name) {
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* f = d->field(i);
      if (f->json_name() == json_name) return f;
    }
    return nullptr;
  }

  static std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Map: return "a mapping";
      case YAML::NodeType::Sequence: return "a sequence";
      case YAML::NodeType::Null: return "null";
      case YAML::NodeType::Scalar: return json_quote(node.Scalar());
      default: return "nothing";
    }
  }

  static flotilla::Status error(const YAML::Node& node, const std::string& path,
                                const std::string& what) {
    std::string prefix;
    YAML::Mark m = node.Mark();
    if (m.line >= 0) prefix = std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
    if (!path.empty()) prefix += path + ": ";
    return bad_request_error(prefix + what);
  }

  static bool quoted(const YAML::Node& node) { return node.Tag() == "!"; }

  flotilla::Status field(const YAML::Node& value, pb::Message* msg, const FD* f,
                         const std::string& path) {
    const pb::Reflection* r = msg->GetReflection();
    if (f->is_map()) {
      if (value.IsNull()) return flotilla::Status::ok();
      if (!value.IsMap()) return error(value, path, "expected a mapping, got " + describe(value));
      const FD* key_field = f->message_type()->map_key();
      const FD* value_field = f->message_type()->map_value();
      std::map<std::string, int, std::less<>> seen;  // key -> 1-based line, as in message()
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!it->first.IsScalar()) {
          return error(it->first, path, "expected a key, got " + describe(it->first));
        }
        std::string entry_path = key_path(path, it->first.Scalar());
        auto [first, inserted] = seen.emplace(it->first.Scalar(), it->first.Mark().line + 1);
        if (!inserted) {
          return error(it->first, entry_path,
                       "duplicate key (already given at line " + std::to_string(first->second) + ")");
        }
        pb::Message* entry = r->AddMessage(msg, f);
        FLOTILLA_RETURN_IF_ERROR(scalar(it->first, entry, key_field, entry_path, false));
        if (value_field->cpp_type() == FD::CPPTYPE_MESSAGE) {
          FLOTILLA_RETURN_IF_ERROR(message(it->second, entry->GetReflection()->MutableMessage(
                                                           entry, value_field),
                                           entry_path));
        } else {
          FLOTILLA_RETURN_IF_ERROR(scalar(it->second, entry, value_field, entry_path, false));
        }
      }
      return flotilla::Status::ok();
    }
    if (f->is_repeated()) {
      if (value.IsNull()) return flotilla::Status::ok();
      if (!value.IsSequence()) {
        return error(value, path, "expected a sequence, got " + describe(value));
      }
      size_t i = 0;
      for (auto it = value.begin(); it != value.end(); ++it, ++i) {
        const YAML::Node& item = *it;
        std::string item_path = index_path(path, i);
        if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
          FLOTILLA_RETURN_IF_ERROR(message(item, r->AddMessage(msg, f), item_path));
        } else {
          FLOTILLA_RETURN_IF_ERROR(scalar(item, msg, f, item_path, true));
        }
      }
      return flotilla::Status::ok();
    }
    if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
      if (value.IsNull()) return flotilla::Status::ok();
      return message(value, r->MutableMessage(msg, f), path);
    }
    return scalar(value, msg, f, path, false);
  }

  template <typename T>
  static bool parse_int(const std::string& s, T* out) {
    std::string_view v = s;
    if (!v.empty() && v[0] == '+') v.remove_prefix(1);
    if (v.empty()) return false;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
    return ec == std::errc() && ptr == v.data() + v.size();
  }

  // Is `s` an integer, whatever its size?
  static bool looks_integer(std::string_view s) {
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  }

  static bool parse_bool(const std::string& s, bool* out) {
    static constexpr std::string_view kTrue[] = {"true", "True", "TRUE", "yes", "Yes",
                                                 "YES",  "on",   "On",   "ON",  "y", "Y"};
    static constexpr std::string_view kFalse[] = {"false", "False", "FALSE", "no", "No",
                                                  "NO",    "off",   "Off",   "OFF", "n", "N"};
    for (std::string_view t : kTrue) {
      if (s == t) return *out = true, true;
    }
    for (std::string_view f : kFalse) {
      if (s == f) return *out = false, true;
    }
    return false;
  }

  template <typename T>
  flotilla::Status integer(const YAML::Node& node, const std::string& path, std::string_view type,
                           T* out) {
    const std::string& s = node.Scalar();
    if (quoted(node) || !looks_integer(s)) {
      return error(node, path, "expected an integer, got " + describe(node));
    }
    if (!parse_int(s, out)) {
      return error(node, path, "integer " + s + " is out of range for " + std::string(type));
    }
    return flotilla::Status::ok();
  }

  // One scalar into a singular or (add == true) repeated field.
  flotilla::Status scalar(const YAML::Node& node, pb::Message* msg, const FD* f,
                          const std::string& path, bool add) {
    const pb::Reflection* r = msg->GetReflection();
    if (node.IsNull()) {
      if (!add) return flotilla::Status::ok();  // null means unset
    } else if (!node.IsScalar()) {
      std::string want = f->cpp_type() == FD::CPPTYPE_STRING ? "a string"
                         : f->cpp_type() == FD::CPPTYPE_BOOL ? "a boolean"
                                                             : "a scalar";
      return error(node, path, "expected " + want + ", got " + describe(node));
    }
    const std::string text = node.IsNull() ? std::string() : node.Scalar();
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING:
        // JSON, YAML and proto3 strings are UTF-8; other bytes would not
        // survive encoding (found by the codec fuzz target).
        if (!valid_utf8(text)) return error(node, path, "invalid UTF-8 in a string");
        add ? r->AddString(msg, f, text) : r->SetString(msg, f, text);
        break;
      case FD::CPPTYPE_INT32: {
        int32_t v = 0;
        if (!node.IsNull()) FLOTILLA_RETURN_IF_ERROR(integer(node, path, "int32", &v));
        add ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
        break;
      }
      case FD::CPPTYPE_INT64: {
        int64_t v = 0;
        if (!node.IsNull()) FLOTILLA_RETURN_IF_ERROR(integer(node, path, "int64", &v));
        add ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
        break;
      }
      case FD::CPPTYPE_UINT32: {
        uint32_t v = 0;
        if (!node.IsNull()) FLOTILLA_RETURN_IF_ERROR(integer(node, path, "uint32", &v));
        add ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
        break;
      }
      case FD::CPPTYPE_UINT64: {
        uint64_t v = 0;
        if (!node.IsNull()) FLOTILLA_RETURN_IF_ERROR(integer(node, path, "uint64", &v));
        add ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
        break;
      }
      case FD::CPPTYPE_DOUBLE:
      case FD::CPPTYPE_FLOAT: {
        double v = 0;
        if (!node.IsNull()) {
          std::string_view sv = text;
          if (!sv.empty() && sv[0] == '+') sv.remove_prefix(1);
          auto [ptr, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), v);
          if (quoted(node) || sv.empty() || ec != std::errc() || ptr != sv.data() + sv.size()) {
            return error(node, path, "expected a number, got " + describe(node));
          }
        }
        if (f->cpp_type() == FD::CPPTYPE_DOUBLE) {
          add ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
        } else {
          float fv = static_cast<float>(v);
          add ? r->AddFloat(msg, f, fv) : r->SetFloat(msg, f, fv);
        }
        break;
      }
      case FD::CPPTYPE_BOOL: {
        bool v = false;
        if (!node.IsNull() && (quoted(node) || !parse_bool(text, &v))) {
          return error(node, path, "expected a boolean, got " + describe(node));
        }
        add ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
        break;
      }
      case FD::CPPTYPE_ENUM: {
        const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByName(text);
        int32_t number = 0;
        if (e == nullptr && !quoted(node) && parse_int(text, &number)) {
          e = f->enum_type()->FindValueByNumber(number);
        }
        if (e == nullptr) {
          std::string allowed;
          for (int i = 0; i < f->enum_type()->value_count(); ++i) {
            allowed += (i ? ", " : "") + json_quote(f->enum_type()->value(i)->name());
          }
          return error(node, path,
                       "unsupported value " + describe(node) + ", expected one of " + allowed);
        }
        add ? r->AddEnum(msg, f, e) : r->SetEnum(msg, f, e);
        break;
      }
      case FD::CPPTYPE_MESSAGE:
        return error(node, path, "expected a mapping, got " + describe(node));
    }
    return flotilla::Status::ok();
  }

  flotilla::Status time(const YAML::Node& node, pb::Message* msg, const std::string& path) {
    if (!node.IsScalar()) {
      return error(node, path, "expected an RFC 3339 time string, got " + describe(node));
    }
    StatusOr<TimePoint> t = parse_rfc3339(node.Scalar());
    if (!t.is_ok()) {
      return error(node, path,
                   "invalid time " + json_quote(node.Scalar()) +
                       ": expected RFC 3339, e.g. \"2026-01-02T03:04:05Z\"");
    }
    const FD* nanos = msg->GetDescriptor()->FindFieldByName("nanos");
    msg->GetReflection()->SetInt64(msg, nanos, to_nanos(*t));
    return flotilla::Status::ok();
  }

  flotilla::Status int_or_string(const YAML::Node& node, pb::Message* msg,
                                 const std::string& path) {
    if (!node.IsScalar()) {
      return error(node, path, "expected an integer or a string, got " + describe(node));
    }
    const pb::Descriptor* d = msg->GetDescriptor();
    const pb::Reflection* r = msg->GetReflection();
    const std::string& s = node.Scalar();
    if (!quoted(node) && looks_integer(s)) {
      int32_t v = 0;
      if (!parse_int(s, &v)) {
        return error(node, path, "integer " + s + " is out of range for int32");
      }
      r->SetInt32(msg, d->FindFieldByName("int_val"), v);
    } else {
      r->SetString(msg, d->FindFieldByName("str_val"), s);
    }
    return flotilla::Status::ok();
  }

  std::vector<DecodeWarning>* warnings_;
};

// Manifests are UTF-8 (as Kubernetes reads them, and as protobuf strings
// must be): the first byte that is not, as "LINE:COL: invalid UTF-8 ...".
// Without this check a stray byte was read into a string, then written out
// as JSON nothing could read back (found by the codec fuzzer).
// What is wrong with the bytes at the start of `text` (empty when they are a
// well-formed character; `*length` is then its length in bytes).
std::string utf8_problem(std::string_view text, size_t* length) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  auto hex = [](uint32_t v, int digits) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%0*X", digits, v);
    return std::string(buf);
  };
  const unsigned char c = byte(0);
  const size_t n = c < 0x80            ? 1
                   : (c >> 5) == 0x6   ? 2
                   : (c >> 4) == 0xE   ? 3
                   : (c >> 3) == 0x1E  ? 4
                                       : 0;
  *length = n;
  if (n == 0) return "byte 0x" + hex(c, 2) + " does not start a character";
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if (k == text.size()) return "the character starting with byte 0x" + hex(c, 2) + " is cut off";
    if ((byte(k) & 0xC0) != 0x80) {
      return "byte 0x" + hex(byte(k), 2) + " after 0x" + hex(c, 2) +
             " is not a continuation byte";
    }
    cp = (cp << 6) | (byte(k) & 0x3F);
  }
  const uint32_t shortest = n == 1 ? 0 : n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < shortest) return "U+" + hex(cp, 4) + " in a longer form than its own";
  if (cp > 0x10FFFF) return "U+" + hex(cp, 4) + " is beyond U+10FFFF";
  if (cp >= 0xD800 && cp <= 0xDFFF) return "U+" + hex(cp, 4) + " is a surrogate, not a character";
  return "";
}

flotilla::Status check_utf8(std::string_view text) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    if (static_cast<unsigned char>(text[i]) >= 0x80) {
      std::string problem = utf8_problem(text.substr(i), &n);
      if (!problem.empty()) {
        return bad_request_error(std::to_string(line) + ":" + std::to_string(col) +
                                 ": invalid UTF-8: " + problem);
      }
    }
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    i += n;
  }
  return flotilla::Status::ok();
}

flotilla::Status syntax_error(const YAML::Exception& e) {
  std::string prefix;
  if (e.mark.line >= 0) {
    prefix = std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) + ": ";
  }
  return bad_request_error(prefix + "invalid YAML: " + e.msg);
}

std::string position_prefix(std::string_view source, const YAML::Node& node) {
  std::string p(source);
  YAML::Mark m = node.Mark();
  if (m.line >= 0) p += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  return p + ": ";
}

std::string scalar_or_empty(const YAML::Node& node) {
  return node && node.IsScalar() ? node.Scalar() : std::string();
}

// One object of a core kind; `default_kind` for items of a typed list (PodList)
// that leave out their kind.
flotilla::Status decode_object(const YAML::Node& node, std::string_view source,
                               const KindInfo* default_kind, std::vector<DecodedObject>* out) {
  std::string where = position_prefix(source, node);
  if (!node.IsMap()) {
    return bad_request_error(where + "expected an object (a mapping), got " +
                             (node.IsSequence() ? std::string("a sequence")
                                                : json_quote(scalar_or_empty(node))));
  }
  std::string kind = scalar_or_empty(node["kind"]);
  std::string api_version = scalar_or_empty(node["apiVersion"]);
  if (kind.empty() && default_kind != nullptr) kind = std::string(default_kind->name);
  if (api_version.empty() && default_kind != nullptr) api_version = default_kind->api_version;
  if (kind.empty()) return bad_request_error(where + "Object 'Kind' is missing");
  if (api_version.empty()) return bad_request_error(where + "Object 'apiVersion' is missing");

  bool is_list = kind == "List";
  const KindInfo* list_of = nullptr;
  for (const KindInfo& k : all_kinds()) {
    if (k.list_kind == kind) list_of = &k;
  }
  const KindInfo* info = kind_by_name(kind);
  std::string_view want = info != nullptr      ? info->api_version
                          : list_of != nullptr ? list_of->api_version
                                               : std::string_view("v1");
  if ((info == nullptr && !is_list && list_of == nullptr) || api_version != want) {
    return bad_request_error(where + "no matches for kind " + json_quote(kind) + " in version " +
                             json_quote(api_version) +
                             " (supported: apiVersion v1 with kind Pod, ReplicationController, "
                             "Service, Endpoints, Node, Namespace, Event or List; "
                             "coordination.k8s.io/v1 with kind Lease; "
                             "discovery.k8s.io/v1 with kind EndpointSlice)");
  }

  if (is_list || list_of != nullptr) {
    std::vector<DecodeWarning> list_warnings;
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string key = scalar_or_empty(it->first);
      if (key == "apiVersion" || key == "kind" || key == "metadata" || key == "items") continue;
      YAML::Mark m = it->first.Mark();
      list_warnings.push_back({key, "unknown field", m.line + 1, m.column + 1});
    }
    YAML::Node items = node["items"];
    if (items && !items.IsNull() && !items.IsSequence()) {
      return bad_request_error(position_prefix(source, items) + "items: expected a sequence");
    }
    size_t first = out->size();
    if (items && items.IsSequence()) {
      for (auto it = items.begin(); it != items.end(); ++it) {
        flotilla::Status s = decode_object(*it, source, list_of, out);
        if (!s.is_ok()) return s;
      }
    }
    // List-level warnings travel with the first item (or are lost with an empty list).
    if (out->size() > first) {
      auto& w = (*out)[first].warnings;
      w.insert(w.begin(), list_warnings.begin(), list_warnings.end());
    }
    return flotilla::Status::ok();
  }

  DecodedObject obj;
  obj.kind = info->kind;
  obj.object = std::shared_ptr<pb::Message>(info->make().release());
  obj.source = std::string(source);
  YAML::Mark m = node.Mark();
  obj.line = m.line + 1;
  obj.column = m.column + 1;
  flotilla::Status s = decode_into(node, obj.object.get(), "", &obj.warnings);
  if (!s.is_ok()) return s.with_prefix(std::string(source) + ":");
  // Items of a typed list may leave these out; the object carries them.
  fill_type_meta(obj.object.get());
  out->push_back(std::move(obj));
  return flotilla::Status::ok();
}

// ----------------------------------------------------------------- encoding

// An ordered tree of JSON values: what both printers print.
struct Value {
  enum class Type { kNull, kBool, kNumber, kString, kList, kMap };
  Type type = Type::kNull;
  std::string text;  // number text or string
  bool boolean = false;
  std::vector<Value> list;
  std::vector<std::pair<std::string, Value>> map;

  // Declared so clang 14 with libstdc++ 12 does not need pair<string, Value>
  // complete while Value is still being defined (the fuzz build uses clang).
  Value() = default;
  static Value string(std::string s) {
    Value v;
    v.type = Type::kString;
    v.text = std::move(s);
    return v;
  }
  static Value number(std::string s) {
    Value v;
    v.type = Type::kNumber;
    v.text = std::move(s);
    return v;
  }
  static Value of_bool(bool b) {
    Value v;
    v.type = Type::kBool;
    v.boolean = b;
    return v;
  }
};

template <typename T>
std::string number_text(T v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;
  return std::string(buf, ptr);
}

Value encode_message(const pb::Message& msg);

Value encode_any(const pb::Value& v) {
  switch (v.kind_case()) {
    case pb::Value::kBoolValue: return Value::of_bool(v.bool_value());
    case pb::Value::kNumberValue: return Value::number(number_text(v.number_value()));
    case pb::Value::kStringValue: return Value::string(v.string_value());
    case pb::Value::kListValue: {
      Value out;
      out.type = Value::Type::kList;
      for (const auto& item : v.list_value().values()) out.list.push_back(encode_any(item));
      return out;
    }
    case pb::Value::kStructValue: {
      Value out;
      out.type = Value::Type::kMap;
      std::map<std::string, const pb::Value*> sorted;
      for (const auto& [k, item] : v.struct_value().fields()) sorted[k] = &item;
      for (const auto& [k, item] : sorted) out.map.emplace_back(k, encode_any(*item));
      return out;
    }
    default: return Value();
  }
}

Value scalar_value(const pb::Message& msg, const FD* f, int index) {
  const pb::Reflection* r = msg.GetReflection();
  bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_STRING:
      return Value::string(rep ? r->GetRepeatedString(msg, f, index) : r->GetString(msg, f));
    case FD::CPPTYPE_INT32:
      return Value::number(
          number_text(rep ? r->GetRepeatedInt32(msg, f, index) : r->GetInt32(msg, f)));
    case FD::CPPTYPE_INT64:
      return Value::number(
          number_text(rep ? r->GetRepeatedInt64(msg, f, index) : r->GetInt64(msg, f)));
    case FD::CPPTYPE_UINT32:
      return Value::number(
          number_text(rep ? r->GetRepeatedUInt32(msg, f, index) : r->GetUInt32(msg, f)));
    case FD::CPPTYPE_UINT64:
      return Value::number(
          number_text(rep ? r->GetRepeatedUInt64(msg, f, index) : r->GetUInt64(msg, f)));
    case FD::CPPTYPE_DOUBLE: {
      double d = rep ? r->GetRepeatedDouble(msg, f, index) : r->GetDouble(msg, f);
      return std::isfinite(d) ? Value::number(number_text(d)) : Value::string(number_text(d));
    }
    case FD::CPPTYPE_FLOAT: {
      float d = rep ? r->GetRepeatedFloat(msg, f, index) : r->GetFloat(msg, f);
      return std::isfinite(d) ? Value::number(number_text(d)) : Value::string(number_text(d));
    }
    case FD::CPPTYPE_BOOL:
      return Value::of_bool(rep ? r->GetRepeatedBool(msg, f, index) : r->GetBool(msg, f));
    case FD::CPPTYPE_ENUM:
      return Value::string(
          (rep ? r->GetRepeatedEnum(msg, f, index) : r->GetEnum(msg, f))->name());
    case FD::CPPTYPE_MESSAGE:
      return encode_message(rep ? r->GetRepeatedMessage(msg, f, index) : r->GetMessage(msg, f));
  }
  return Value();
}

bool is_default_scalar(const pb::Message& msg, const FD* f) {
  const pb::Reflection* r = msg.GetReflection();
  if (f->has_presence()) return !r->HasField(msg, f);
  switch (f->cpp_type()) {
    case FD::CPPTYPE_STRING: return r->GetString(msg, f).empty();
    case FD::CPPTYPE_INT32: return r->GetInt32(msg, f) == 0;
    case FD::CPPTYPE_INT64: return r->GetInt64(msg, f) == 0;
    case FD::CPPTYPE_UINT32: return r->GetUInt32(msg, f) == 0;
    case FD::CPPTYPE_UINT64: return r->GetUInt64(msg, f) == 0;
    case FD::CPPTYPE_DOUBLE: return r->GetDouble(msg, f) == 0 && !std::signbit(r->GetDouble(msg, f));
    case FD::CPPTYPE_FLOAT: return r->GetFloat(msg, f) == 0 && !std::signbit(r->GetFloat(msg, f));
    case FD::CPPTYPE_BOOL: return !r->GetBool(msg, f);
    case FD::CPPTYPE_ENUM: return r->GetEnumValue(msg, f) == 0;
    case FD::CPPTYPE_MESSAGE: return !r->HasField(msg, f);
  }
  return true;
}

Value encode_message(const pb::Message& msg) {
  const pb::Descriptor* d = msg.GetDescriptor();
  const pb::Reflection* r = msg.GetReflection();
  if (is_time(d)) {
    return Value::string(format_time(r->GetInt64(msg, d->FindFieldByName("nanos"))));
  }
  if (d == pb::Value::descriptor()) return encode_any(static_cast<const pb::Value&>(msg));
  if (is_int_or_string(d)) {
    const FD* int_val = d->FindFieldByName("int_val");
    if (r->HasField(msg, int_val)) return Value::number(number_text(r->GetInt32(msg, int_val)));
    return Value::string(r->GetString(msg, d->FindFieldByName("str_val")));
  }
  Value out;
  out.type = Value::Type::kMap;
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (f->is_map()) {
      int n = r->FieldSize(msg, f);
      if (n == 0) continue;
      const FD* kf = f->message_type()->map_key();
      const FD* vf = f->message_type()->map_value();
      std::map<std::string, Value> sorted;
      std::map<int64_t, std::pair<std::string, Value>> sorted_ints;
      bool int_keys = kf->cpp_type() != FD::CPPTYPE_STRING && kf->cpp_type() != FD::CPPTYPE_BOOL;
      for (int j = 0; j < n; ++j) {
        const pb::Message& entry = r->GetRepeatedMessage(msg, f, j);
        Value key = scalar_value(entry, kf, -1);
        std::string key_text = key.type == Value::Type::kBool ? (key.boolean ? "true" : "false")
                                                              : key.text;
        Value value = scalar_value(entry, vf, -1);
        if (int_keys) {
          int64_t k = 0;
          std::from_chars(key_text.data(), key_text.data() + key_text.size(), k);
          sorted_ints[k] = {key_text, std::move(value)};
        } else {
          sorted[key_text] = std::move(value);
        }
      }
      Value m;
      m.type = Value::Type::kMap;
      for (auto& [k, v] : sorted) m.map.emplace_back(k, std::move(v));
      for (auto& [k, kv] : sorted_ints) m.map.emplace_back(std::move(kv.first), std::move(kv.second));
      out.map.emplace_back(f->json_name(), std::move(m));
    } else if (f->is_repeated()) {
      int n = r->FieldSize(msg, f);
      if (n == 0) continue;
      Value list;
      list.type = Value::Type::kList;
      for (int j = 0; j < n; ++j) list.list.push_back(scalar_value(msg, f, j));
      out.map.emplace_back(f->json_name(), std::move(list));
    } else {
      if (is_default_scalar(msg, f)) continue;
      out.map.emplace_back(f->json_name(), scalar_value(msg, f, -1));
    }
  }
  return out;
}

void print_json(const Value& v, bool pretty, int indent, std::string& out) {
  auto newline = [&](int level) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<size_t>(level) * 2, ' ');
  };
  switch (v.type) {
    case Value::Type::kNull: out += "null"; break;
    case Value::Type::kBool: out += v.boolean ? "true" : "false"; break;
    case Value::Type::kNumber: out += v.text; break;
    case Value::Type::kString: out += json_quote(v.text); break;
    case Value::Type::kList:
      if (v.list.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < v.list.size(); ++i) {
        if (i) out += ',';
        newline(indent + 1);
        print_json(v.list[i], pretty, indent + 1, out);
      }
      newline(indent);
      out += ']';
      break;
    case Value::Type::kMap:
      if (v.map.empty()) {
        out += "{}";
        break;
      }
      out += '{';
      for (size_t i = 0; i < v.map.size(); ++i) {
        if (i) out += ',';
        newline(indent + 1);
        out += json_quote(v.map[i].first);
        out += pretty ? ": " : ":";
        print_json(v.map[i].second, pretty, indent + 1, out);
      }
      newline(indent);
      out += '}';
      break;
  }
}

// Can `s` be written as a plain YAML scalar and read back as the same string
// (under YAML 1.1 and 1.2 resolution rules)? Conservative: when in doubt, quote.
bool plain_yaml_safe(std::string_view s) {
  if (s.empty()) return false;
  unsigned char first = static_cast<unsigned char>(s[0]);
  if (first >= '0' && first <= '9') {
    // "128Mi" and "500m" stay plain; anything a resolver could read as a
    // number ("1.0", "1e3", "0x1F", "12:30", "1_000") is quoted.
    constexpr std::string_view kNumberish = "0123456789.eE+-_:xXoObBabcdefABCDEF";
    if (std::all_of(s.begin(), s.end(),
                    [&](char c) { return kNumberish.find(c) != std::string_view::npos; })) {
      return false;
    }
  } else if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || first == '/')) {
    return false;
  }
  if (s.back() == ' ' || s.back() == ':') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ' ' || c == '.' || c == '_' || c == '/' || c == '-' || c == ':' || c == '@' ||
              c == '=' || c == '+';
    if (!ok) return false;
    if (c == ':' && i + 1 < s.size() && s[i + 1] == ' ') return false;
  }
  std::string lower;
  for (char c : s) lower += static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  static constexpr std::string_view kReserved[] = {"y",   "n",     "yes",  "no",   "true",
                                                   "false", "on",  "off",  "null", ".inf",
                                                   ".nan"};
  for (std::string_view r : kReserved) {
    if (lower == r) return false;
  }
  return true;
}

std::string yaml_scalar(const Value& v) {
  switch (v.type) {
    case Value::Type::kNull: return "null";
    case Value::Type::kBool: return v.boolean ? "true" : "false";
    case Value::Type::kNumber: return v.text;
    case Value::Type::kString: return plain_yaml_safe(v.text) ? v.text : json_quote(v.text);
    default: return "";
  }
}

void print_yaml_map(const Value& v, int indent, bool first_inline, std::string& out);
void print_yaml_list(const Value& v, int indent, std::string& out);

// Writes what follows "key:" or "-".
void print_yaml_after(const Value& v, int indent, std::string& out, bool in_list) {
  if (v.type == Value::Type::kMap) {
    if (v.map.empty()) {
      out += " {}\n";
    } else if (in_list) {
      out += ' ';
      print_yaml_map(v, indent + 2, true, out);
    } else {
      out += '\n';
      print_yaml_map(v, indent + 2, false, out);
    }
  } else if (v.type == Value::Type::kList) {
    if (v.list.empty()) {
      out += " []\n";
    } else {
      out += '\n';
      // Kubernetes style: a list under a key is not indented further.
      print_yaml_list(v, in_list ? indent + 2 : indent, out);
    }
  } else {
    out += ' ';
    out += yaml_scalar(v);
    out += '\n';
  }
}

// YAML's implicit keys ("key: value") are at most 1,024 characters; a longer
// one is written as an explicit key ("? key" then ": value" below it).
constexpr size_t kMaxImplicitKey = 1024;

void print_yaml_map(const Value& v, int indent, bool first_inline, std::string& out) {
  for (size_t i = 0; i < v.map.size(); ++i) {
    if (i > 0 || !first_inline) out.append(static_cast<size_t>(indent), ' ');
    const std::string& k = v.map[i].first;
    std::string key = plain_yaml_safe(k) ? k : json_quote(k);
    if (key.size() > kMaxImplicitKey) {
      out += "? ";
      out += key;
      out += '\n';
      out.append(static_cast<size_t>(indent), ' ');
    } else {
      out += key;
    }
    out += ':';
    print_yaml_after(v.map[i].second, indent, out, false);
  }
}

void print_yaml_list(const Value& v, int indent, std::string& out) {
  for (const Value& item : v.list) {
    out.append(static_cast<size_t>(indent), ' ');
    out += '-';
    print_yaml_after(item, indent, out, true);
  }
}

}  // namespace

std::string DecodeWarning::to_string() const { return field + ": " + message; }

flotilla::Status decode_into(const YAML::Node& node, google::protobuf::Message* message,
                             std::string_view path, std::vector<DecodeWarning>* warnings) {
  try {
    Decoder decoder(warnings);
    return decoder.message(node, message, std::string(path));
  } catch (const YAML::Exception& e) {
    return syntax_error(e);
  } catch (const std::exception& e) {
    return internal_error(std::string("decoding failed: ") + e.what());
  }
}

StatusOr<std::vector<DecodedObject>> decode_manifest_node(const YAML::Node& node,
                                                          std::string_view source_name) {
  std::vector<DecodedObject> out;
  try {
    flotilla::Status s = decode_object(node, source_name, nullptr, &out);
    if (!s.is_ok()) return s;
  } catch (const YAML::Exception& e) {
    return syntax_error(e).with_prefix(std::string(source_name) + ":");
  } catch (const std::exception& e) {
    return internal_error(std::string(source_name) + ": decoding failed: " + e.what());
  }
  return out;
}

namespace {

// yaml-cpp 0.7's LoadAll never returns on some malformed streams (a lone ",":
// jbeder/yaml-cpp#1040, fixed upstream by #1319): the parser reports an empty
// document forever without consuming input, and LoadAll collects them until
// memory runs out. A stream cannot hold more documents than it has bytes, so a
// cheap event-only pass counts documents first and stops there.
class DocumentCounter final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    ++documents;
    last = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  size_t documents = 0;
  YAML::Mark last;
};

// OK when LoadAll(text) terminates; a syntax error at the stuck position otherwise.
flotilla::Status check_document_stream(const std::string& text, std::string_view source_name) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  while (parser.HandleNextDocument(counter)) {
    if (counter.documents > text.size() + 1) {
      return flotilla::Status(StatusCode::kBadRequest,
                              std::string(source_name) + ":" + std::to_string(counter.last.line + 1) +
                                  ":" + std::to_string(counter.last.column + 1) +
                                  ": unexpected text where a document should start");
    }
  }
  return flotilla::Status::ok();
}

// JSON read as JSON, as the YAML nodes the decoder reads: yaml-cpp, which
// reads JSON as YAML, ends an implicit key at 1,024 characters (the YAML
// spec's limit for flow keys), so valid JSON with a longer object key (found
// by the codec fuzzer) does not load. Input that fails to load as YAML and
// starts like JSON is tried this way; the nodes have no positions, so later
// errors name fields, not lines. Strings are tagged as quoted scalars are,
// so "1" stays a string. Nothing when it is not JSON either, or nests deeper
// than the decoder would read.
constexpr int kMaxJsonDepth = 256;

bool json_to_node(const nlohmann::json& j, int depth, YAML::Node* out) {
  if (depth > kMaxJsonDepth) return false;
  switch (j.type()) {
    case nlohmann::json::value_t::object:
      *out = YAML::Node(YAML::NodeType::Map);
      for (const auto& [key, value] : j.items()) {
        YAML::Node v;
        if (!json_to_node(value, depth + 1, &v)) return false;
        YAML::Node k(key);
        k.SetTag("!");
        out->force_insert(k, v);
      }
      return true;
    case nlohmann::json::value_t::array:
      *out = YAML::Node(YAML::NodeType::Sequence);
      for (const auto& value : j) {
        YAML::Node v;
        if (!json_to_node(value, depth + 1, &v)) return false;
        out->push_back(v);
      }
      return true;
    case nlohmann::json::value_t::string:
      *out = YAML::Node(j.get<std::string>());
      out->SetTag("!");
      return true;
    case nlohmann::json::value_t::null:
      *out = YAML::Node(YAML::NodeType::Null);
      return true;
    default:  // numbers and booleans: their JSON text, as a plain scalar
      *out = YAML::Node(j.dump());
      return true;
  }
}

std::optional<YAML::Node> json_as_node(std::string_view text) {
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || (text[start] != '{' && text[start] != '[')) {
    return std::nullopt;
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  YAML::Node node;
  if (!json_to_node(j, 0, &node)) return std::nullopt;
  return node;
}

}  // namespace

StatusOr<std::vector<DecodedObject>> decode_manifests(std::string_view text,
                                                      std::string_view source_name) {
  std::vector<YAML::Node> docs;
  FLOTILLA_RETURN_IF_ERROR(check_utf8(text).with_prefix(std::string(source_name) + ":"));
  try {
    std::string owned(text);
    FLOTILLA_RETURN_IF_ERROR(check_document_stream(owned, source_name));
    docs = YAML::LoadAll(owned);
  } catch (const YAML::Exception& e) {
    std::optional<YAML::Node> json = json_as_node(text);
    if (!json.has_value()) return syntax_error(e).with_prefix(std::string(source_name) + ":");
    docs = {*json};
  } catch (const std::exception& e) {
    return internal_error(std::string(source_name) + ": reading failed: " + e.what());
  }
  std::vector<DecodedObject> out;
  for (const YAML::Node& doc : docs) {
    if (!doc || doc.IsNull()) continue;
    StatusOr<std::vector<DecodedObject>> objects = decode_manifest_node(doc, source_name);
    if (!objects.is_ok()) return objects.status();
    for (DecodedObject& o : *objects) out.push_back(std::move(o));
  }
  return out;
}

flotilla::Status decode_yaml(std::string_view text, std::string_view source_name,
                             google::protobuf::Message* message,
                             std::vector<DecodeWarning>* warnings) {
  YAML::Node node;
  FLOTILLA_RETURN_IF_ERROR(check_utf8(text).with_prefix(std::string(source_name) + ":"));
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    std::optional<YAML::Node> json = json_as_node(text);
    if (!json.has_value()) return syntax_error(e).with_prefix(std::string(source_name) + ":");
    node = *json;
  } catch (const std::exception& e) {
    return internal_error(std::string(source_name) + ": reading failed: " + e.what());
  }
  return decode_into(node, message, "", warnings).with_prefix(std::string(source_name) + ":");
}

std::string encode_json(const google::protobuf::Message& message, bool pretty) {
  std::string out;
  print_json(encode_message(message), pretty, 0, out);
  if (pretty) out += '\n';
  return out;
}

std::string encode_yaml(const google::protobuf::Message& message) {
  Value v = encode_message(message);
  if (v.type != Value::Type::kMap) return yaml_scalar(v) + "\n";
  if (v.map.empty()) return "{}\n";
  std::string out;
  print_yaml_map(v, 0, false, out);
  return out;
}

void fill_type_meta(google::protobuf::Message* object) {
  if (const KindInfo* info = kind_of(*object)) info->fill_type_meta(*object);
}

std::string object_label(const google::protobuf::Message& object) {
  const KindInfo* info = kind_of(object);
  if (info == nullptr) return std::string(object.GetDescriptor()->name());
  const std::string& name = info->meta(object).name();
  std::string out(info->name);
  if (!name.empty()) out += "/" + name;
  return out;
}

}  // namespace flotilla::api
