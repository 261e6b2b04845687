// Label and field selectors with Kubernetes semantics. Label selectors are
// equality-based (`a=b`, `a==b`, `a!=b`) and set-based (`a in (x,y)`,
// `a notin (x)`, `a`, `!a`), comma-separated requirements all of which must
// hold. Field selectors are `path=value` / `path!=value` over a few fields.
#pragma once

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/util/status.h"

namespace flotilla::api {

using Labels = google::protobuf::Map<std::string, std::string>;

// Kubernetes' label syntax. A key is an optional DNS-subdomain prefix and "/",
// then a name of at most 63 characters: alphanumerics, '-', '_' and '.',
// starting and ending with an alphanumeric. A value is empty or follows the
// name rules. Errors (kBadRequest) quote the text and say which rule failed.
flotilla::Status check_label_key(std::string_view key);
flotilla::Status check_label_value(std::string_view value);

// The same key=value pairs (maps have no order); for any string map
// (annotations, resource lists) as well.
bool same_labels(const Labels& a, const Labels& b);

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;  // sorted, unique

  bool matches(const Labels& labels) const;
  friend bool operator==(const LabelRequirement&, const LabelRequirement&) = default;
};

class LabelSelector {
 public:
  // Matches everything.
  LabelSelector() = default;
  // Parses the string form; errors name the offending requirement and why
  // (invalid key/value per Kubernetes' label rules, unbalanced parentheses,
  // an empty value set, ...).
  static StatusOr<LabelSelector> parse(std::string_view text);
  // Equality on every pair: a ReplicationController's or Service's selector.
  // An empty map gives the selector that matches everything.
  static LabelSelector from_map(const Labels& pairs);

  bool matches(const Labels& labels) const;
  bool empty() const { return requirements_.empty(); }
  // Requirements sorted by key, then operator: a canonical order.
  const std::vector<LabelRequirement>& requirements() const { return requirements_; }
  // Canonical string form, parseable again ("app=web,tier in (a,b)").
  std::string to_string() const;
  // If the selector pins `key` to one value (key=value), returns it.
  const std::string* exact_value(std::string_view key) const;

  friend bool operator==(const LabelSelector&, const LabelSelector&) = default;

 private:
  std::vector<LabelRequirement> requirements_;
};

struct FieldRequirement {
  std::string field;   // "metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"
  bool equals = true;  // false for !=
  std::string value;
  friend bool operator==(const FieldRequirement&, const FieldRequirement&) = default;
};

class FieldSelector {
 public:
  FieldSelector() = default;  // matches everything
  // Parses "spec.nodeName=n1,status.phase!=Running" (also `==`; `\,`, `\=`,
  // `\!` and `\\` escape those characters in values; blanks around terms are
  // ignored). Requirements are kept sorted by field. Unknown fields are an
  // error naming the field and listing the supported ones.
  static StatusOr<FieldSelector> parse(std::string_view text);

  // The fields a selector may name.
  static const std::vector<std::string_view>& supported_fields();
  // A field's value in an object of any kind; fields a kind lacks read as "".
  static std::string_view field_value(const google::protobuf::Message& object,
                                      std::string_view field);

  // Whether every field a selector may name reads the same in `a` and `b`
  // (two versions of one object): then no field selector tells them apart.
  static bool same_fields(const google::protobuf::Message& a, const google::protobuf::Message& b);

  // Evaluates against any kind's object; fields a kind lacks read as "".
  bool matches(const google::protobuf::Message& object) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<FieldRequirement>& requirements() const { return requirements_; }
  std::string to_string() const;
  // If the selector pins `field` to one value (field=value), returns it.
  const std::string* exact_value(std::string_view field) const;

  friend bool operator==(const FieldSelector&, const FieldSelector&) = default;

 private:
  std::vector<FieldRequirement> requirements_;
};

}  // namespace flotilla::api
