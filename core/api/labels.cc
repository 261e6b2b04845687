// Label and field selectors, following k8s.io/apimachinery/pkg/labels and
// pkg/fields: the same lexer (identifiers end at blanks and at ! = ( ) , < >),
// the same grammar and the same matching rules (`!=` and `notin` also match
// objects without the key).
#include "core/api/labels.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/api/object.h"

namespace flotilla::api {
namespace {

constexpr size_t kMaxNameLength = 63;
constexpr size_t kMaxPrefixLength = 253;

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

std::string quote(std::string_view s) {
  std::string q = "\"";
  q += s;
  q += "\"";
  return q;
}

// The "name" rule shared by label key names and label values (non-empty here).
std::string name_rule_error(std::string_view s) {
  if (s.size() > kMaxNameLength) return "must be no more than 63 characters";
  bool ok = is_alnum(s.front()) && is_alnum(s.back());
  for (char c : s) ok = ok && (is_alnum(c) || c == '-' || c == '_' || c == '.');
  if (!ok) {
    return "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
           "with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')";
  }
  return "";
}

// RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', each dot-separated
// part starting and ending with an alphanumeric.
std::string dns_subdomain_error(std::string_view s) {
  if (s.size() > kMaxPrefixLength) return "must be no more than 253 characters";
  bool ok = true;
  size_t start = 0;
  while (ok) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    ok = !part.empty() && is_lower_alnum(part.front()) && is_lower_alnum(part.back());
    for (char c : part) ok = ok && (is_lower_alnum(c) || c == '-');
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (!ok) {
    return "must be a lowercase RFC 1123 subdomain: lowercase alphanumeric characters, '-' or "
           "'.', each part starting and ending with an alphanumeric character (e.g. "
           "'example.com')";
  }
  return "";
}

// ------------------------------------------------------------------ lexer

enum class Tok {
  kIdent,
  kIn,
  kNotIn,
  kEq,
  kDoubleEq,
  kNotEq,
  kBang,
  kOpen,
  kClose,
  kComma,
  kGt,
  kLt,
  kEnd
};

struct Token {
  Tok tok;
  std::string_view text;
};

bool is_special(char c) {
  return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}
bool is_blank(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::vector<Token> lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  while (true) {
    while (i < s.size() && is_blank(s[i])) ++i;
    if (i == s.size()) break;
    char c = s[i];
    if (is_special(c)) {
      std::string_view two = s.substr(i, 2);
      if (two == "!=") {
        out.push_back({Tok::kNotEq, two});
        i += 2;
      } else if (two == "==") {
        out.push_back({Tok::kDoubleEq, two});
        i += 2;
      } else {
        Tok t = c == '!'   ? Tok::kBang
                : c == '=' ? Tok::kEq
                : c == '(' ? Tok::kOpen
                : c == ')' ? Tok::kClose
                : c == ',' ? Tok::kComma
                : c == '<' ? Tok::kLt
                           : Tok::kGt;
        out.push_back({t, s.substr(i, 1)});
        ++i;
      }
      continue;
    }
    size_t start = i;
    while (i < s.size() && !is_blank(s[i]) && !is_special(s[i])) ++i;
    std::string_view word = s.substr(start, i - start);
    Tok t = word == "in" ? Tok::kIn : word == "notin" ? Tok::kNotIn : Tok::kIdent;
    out.push_back({t, word});
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

std::string describe(const Token& t) {
  if (t.tok == Tok::kEnd) return "end of string";
  return "'" + std::string(t.text) + "'";
}

// ----------------------------------------------------------------- parser

class LabelParser {
 public:
  explicit LabelParser(std::string_view text) : text_(text), toks_(lex(text)) {}

  flotilla::Status parse(std::vector<LabelRequirement>* out) {
    if (peek().tok == Tok::kEnd) return flotilla::Status::ok();
    while (true) {
      LabelRequirement r;
      FLOTILLA_RETURN_IF_ERROR(requirement(&r));
      out->push_back(std::move(r));
      const Token& t = next();
      if (t.tok == Tok::kEnd) return flotilla::Status::ok();
      if (t.tok == Tok::kClose) return error("unbalanced parentheses: unexpected ')'");
      if (t.tok != Tok::kComma) {
        return error("found " + describe(t) +
                     " after a requirement, expected ',' or end of "
                     "string");
      }
      if (peek().tok == Tok::kEnd) return error("trailing comma: a requirement must follow ','");
    }
  }

 private:
  const Token& peek() const { return toks_[pos_]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (t.tok != Tok::kEnd) ++pos_;
    return t;
  }
  flotilla::Status error(const std::string& what) const {
    return bad_request_error("invalid label selector " + quote(text_) + ": " + what);
  }

  flotilla::Status key(std::string* out) {
    const Token& t = next();
    if (t.tok == Tok::kEnd) return error("missing label key at end of string");
    if (t.tok == Tok::kEq || t.tok == Tok::kDoubleEq || t.tok == Tok::kNotEq) {
      return error("empty key before " + describe(t));
    }
    if (t.tok == Tok::kComma) return error("empty requirement: found ',' where a key belongs");
    if (t.tok != Tok::kIdent) {
      return error("found " + describe(t) + ", expected a label key");
    }
    flotilla::Status s = check_label_key(t.text);
    if (!s.is_ok()) return error(s.message());
    *out = std::string(t.text);
    return flotilla::Status::ok();
  }

  // A value: an identifier, where "in" and "notin" are ordinary words.
  flotilla::Status value(std::string* out) {
    const Token& t = next();
    if (t.tok != Tok::kIdent && t.tok != Tok::kIn && t.tok != Tok::kNotIn) {
      return error("found " + describe(t) + ", expected a label value");
    }
    flotilla::Status s = check_label_value(t.text);
    if (!s.is_ok()) return error(s.message());
    *out = std::string(t.text);
    return flotilla::Status::ok();
  }

  flotilla::Status requirement(LabelRequirement* r) {
    if (peek().tok == Tok::kBang) {
      next();
      if (peek().tok == Tok::kEnd || peek().tok == Tok::kComma) {
        return error("missing label key after '!'");
      }
      FLOTILLA_RETURN_IF_ERROR(key(&r->key));
      r->op = LabelRequirement::Op::kDoesNotExist;
      return flotilla::Status::ok();
    }
    FLOTILLA_RETURN_IF_ERROR(key(&r->key));
    const Token& op = peek();
    switch (op.tok) {
      case Tok::kEnd:
      case Tok::kComma:
      case Tok::kClose:  // reported by the caller as unbalanced
        r->op = LabelRequirement::Op::kExists;
        return flotilla::Status::ok();
      case Tok::kEq:
      case Tok::kDoubleEq:
      case Tok::kNotEq: {
        next();
        r->op = op.tok == Tok::kNotEq ? LabelRequirement::Op::kNotEquals
                                      : LabelRequirement::Op::kEquals;
        std::string v;  // `a=` pins the empty value, as in Kubernetes
        if (peek().tok != Tok::kEnd && peek().tok != Tok::kComma) {
          FLOTILLA_RETURN_IF_ERROR(value(&v));
        }
        r->values = {std::move(v)};
        return flotilla::Status::ok();
      }
      case Tok::kIn:
      case Tok::kNotIn:
        next();
        r->op = op.tok == Tok::kIn ? LabelRequirement::Op::kIn : LabelRequirement::Op::kNotIn;
        return value_set(std::string(op.text), &r->values);
      case Tok::kGt:
      case Tok::kLt:
        return error("operator " + describe(op) +
                     " is not supported (supported: =, ==, !=, in, "
                     "notin, and 'key' / '!key' for existence)");
      case Tok::kBang:
        return error("found '!' after key " + quote(r->key) + "; did you mean '!='?");
      default:
        return error("found " + describe(op) + " after key " + quote(r->key) +
                     ", expected an operator: =, ==, !=, in, notin");
    }
  }

  flotilla::Status value_set(const std::string& op, std::vector<std::string>* values) {
    if (peek().tok != Tok::kOpen) {
      return error("'" + op +
                   "' must be followed by a parenthesized list of values, as in "
                   "'key " +
                   op + " (a,b)'; found " + describe(peek()));
    }
    next();
    if (peek().tok == Tok::kClose) {
      return error("the value set for '" + op + "' cannot be empty");
    }
    while (true) {
      if (peek().tok == Tok::kEnd) return error("unbalanced parentheses: missing ')'");
      if (peek().tok == Tok::kComma) return error("empty value in the list for '" + op + "'");
      std::string v;
      FLOTILLA_RETURN_IF_ERROR(value(&v));
      values->push_back(std::move(v));
      const Token& t = next();
      if (t.tok == Tok::kClose) break;
      if (t.tok == Tok::kEnd) return error("unbalanced parentheses: missing ')'");
      if (t.tok != Tok::kComma) {
        return error("found " + describe(t) + " in the value list, expected ',' or ')'");
      }
      if (peek().tok == Tok::kClose)
        return error("trailing comma in the value list for '" + op + "'");
    }
    std::sort(values->begin(), values->end());
    values->erase(std::unique(values->begin(), values->end()), values->end());
    return flotilla::Status::ok();
  }

  std::string_view text_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
};

void sort_requirements(std::vector<LabelRequirement>* rs) {
  std::stable_sort(rs->begin(), rs->end(),
                   [](const LabelRequirement& a, const LabelRequirement& b) {
                     if (a.key != b.key) return a.key < b.key;
                     return a.op < b.op;
                   });
}

// ----------------------------------------------------------- field selectors

constexpr std::string_view kFieldName = "metadata.name";
constexpr std::string_view kFieldNamespace = "metadata.namespace";
constexpr std::string_view kFieldNodeName = "spec.nodeName";
constexpr std::string_view kFieldPhase = "status.phase";

bool field_supported(std::string_view f) {
  const auto& all = FieldSelector::supported_fields();
  return std::find(all.begin(), all.end(), f) != all.end();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string escape_field_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == ',' || c == '=' || c == '!') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------ label syntax

flotilla::Status check_label_key(std::string_view key) {
  if (key.empty()) return bad_request_error("label key must not be empty");
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (name.find('/') != std::string_view::npos) {
      return bad_request_error("label key " + quote(key) +
                               ": a qualified name must consist of an optional DNS subdomain "
                               "prefix and '/', then a name (e.g. 'example.com/MyName')");
    }
    if (prefix.empty()) {
      return bad_request_error("label key " + quote(key) + ": prefix part must not be empty");
    }
    std::string why = dns_subdomain_error(prefix);
    if (!why.empty()) return bad_request_error("label key " + quote(key) + ": prefix part " + why);
  }
  if (name.empty()) {
    return bad_request_error("label key " + quote(key) + ": name part must not be empty");
  }
  std::string why = name_rule_error(name);
  if (!why.empty()) return bad_request_error("label key " + quote(key) + ": name part " + why);
  return flotilla::Status::ok();
}

flotilla::Status check_label_value(std::string_view value) {
  if (value.empty()) return flotilla::Status::ok();
  std::string why = name_rule_error(value);
  if (!why.empty()) return bad_request_error("label value " + quote(value) + ": " + why);
  return flotilla::Status::ok();
}

// ------------------------------------------------------------ LabelSelector

bool LabelRequirement::matches(const Labels& labels) const {
  auto it = labels.find(key);
  bool has = it != labels.end();
  switch (op) {
    case Op::kEquals:
      return has && it->second == values.front();
    case Op::kNotEquals:
      return !has || it->second != values.front();
    case Op::kIn:
      return has && std::binary_search(values.begin(), values.end(), it->second);
    case Op::kNotIn:
      return !has || !std::binary_search(values.begin(), values.end(), it->second);
    case Op::kExists:
      return has;
    case Op::kDoesNotExist:
      return !has;
  }
  return false;
}

StatusOr<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector sel;
  LabelParser p(text);
  FLOTILLA_RETURN_IF_ERROR(p.parse(&sel.requirements_));
  sort_requirements(&sel.requirements_);
  return sel;
}

LabelSelector LabelSelector::from_map(const Labels& pairs) {
  LabelSelector sel;
  for (const auto& [k, v] : pairs) {
    sel.requirements_.push_back(LabelRequirement{k, LabelRequirement::Op::kEquals, {v}});
  }
  sort_requirements(&sel.requirements_);
  return sel;
}

bool LabelSelector::matches(const Labels& labels) const {
  for (const LabelRequirement& r : requirements_) {
    if (!r.matches(labels)) return false;
  }
  return true;
}

std::string LabelSelector::to_string() const {
  std::string out;
  for (const LabelRequirement& r : requirements_) {
    if (!out.empty()) out += ",";
    using Op = LabelRequirement::Op;
    switch (r.op) {
      case Op::kEquals:
      case Op::kNotEquals:
        out += r.key;
        out += r.op == Op::kEquals ? "=" : "!=";
        out += r.values.front();
        break;
      case Op::kIn:
      case Op::kNotIn: {
        out += r.key;
        out += r.op == Op::kIn ? " in (" : " notin (";
        for (size_t i = 0; i < r.values.size(); ++i) {
          if (i > 0) out += ",";
          out += r.values[i];
        }
        out += ")";
        break;
      }
      case Op::kExists:
        out += r.key;
        break;
      case Op::kDoesNotExist:
        out += "!";
        out += r.key;
        break;
    }
  }
  return out;
}

const std::string* LabelSelector::exact_value(std::string_view key) const {
  for (const LabelRequirement& r : requirements_) {
    if (r.key != key) continue;
    if (r.op == LabelRequirement::Op::kEquals ||
        (r.op == LabelRequirement::Op::kIn && r.values.size() == 1)) {
      return &r.values.front();
    }
  }
  return nullptr;
}

// ------------------------------------------------------------ FieldSelector

const std::vector<std::string_view>& FieldSelector::supported_fields() {
  static const std::vector<std::string_view> kFields = {kFieldName, kFieldNamespace, kFieldNodeName,
                                                        kFieldPhase};
  return kFields;
}

namespace {

// A selectable field beyond metadata.name and metadata.namespace in an object
// of kind `k`; "" where the kind lacks it.
std::string_view kind_field_value(const KindInfo& k, const google::protobuf::Message& object,
                                  std::string_view field) {
  if (k.kind == Kind::kPod) {
    const auto& pod = static_cast<const Pod&>(object);
    if (field == kFieldNodeName) return pod.spec().node_name();
    if (field == kFieldPhase) return pod.status().phase();
  } else if (k.kind == Kind::kNode && field == kFieldPhase) {
    return static_cast<const Node&>(object).status().phase();
  } else if (k.kind == Kind::kNamespace && field == kFieldPhase) {
    return static_cast<const Namespace&>(object).status().phase();
  }
  return "";
}

}  // namespace

std::string_view FieldSelector::field_value(const google::protobuf::Message& object,
                                            std::string_view field) {
  const KindInfo* k = kind_of(object);
  if (k == nullptr) return "";
  if (field == kFieldName) return k->meta(object).name();
  if (field == kFieldNamespace) return k->meta(object).namespace_();
  return kind_field_value(*k, object, field);
}

// The kind looked up once, not twice per field: a store write asks this of
// every update (in the large scenario, 5,000 Lease renewals every 10 s).
bool FieldSelector::same_fields(const google::protobuf::Message& a,
                                const google::protobuf::Message& b) {
  const KindInfo* k = kind_of(a);
  if (k == nullptr || kind_of(b) != k) {
    for (std::string_view f : supported_fields()) {
      if (field_value(a, f) != field_value(b, f)) return false;
    }
    return true;
  }
  const ObjectMeta& ma = k->meta(a);
  const ObjectMeta& mb = k->meta(b);
  if (ma.name() != mb.name() || ma.namespace_() != mb.namespace_()) return false;
  for (std::string_view f : supported_fields()) {
    if (f == kFieldName || f == kFieldNamespace) continue;
    if (kind_field_value(*k, a, f) != kind_field_value(*k, b, f)) return false;
  }
  return true;
}

StatusOr<FieldSelector> FieldSelector::parse(std::string_view text) {
  FieldSelector sel;
  auto error = [&](const std::string& what) {
    return bad_request_error("invalid field selector " + quote(text) + ": " + what);
  };
  if (trim(text).empty()) return sel;
  // Split into terms on unescaped commas; escapes stay in the terms.
  std::vector<std::string_view> terms;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == ',') {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  for (size_t t = 0; t < terms.size(); ++t) {
    std::string_view term = terms[t];
    if (trim(term).empty()) {
      return error(t + 1 == terms.size() ? "trailing comma: a requirement must follow ','"
                                         : "empty requirement between commas");
    }
    std::string field;
    std::string value;
    int op = 0;  // 0: none yet; 1: '=' or '=='; 2: '!='
    for (size_t i = 0; i < term.size(); ++i) {
      char c = term[i];
      std::string& out = op == 0 ? field : value;
      if (c == '\\') {
        if (i + 1 == term.size()) return error("a trailing '\\' escapes nothing");
        char e = term[++i];
        if (e != '\\' && e != ',' && e != '=' && e != '!') {
          return error(std::string("invalid escape sequence '\\") + e +
                       "' (only \\\\, \\, \\= and \\! are allowed)");
        }
        out += e;
      } else if (op == 0 && (term.substr(i, 2) == "!=" || term.substr(i, 2) == "==")) {
        op = c == '!' ? 2 : 1;
        ++i;
      } else if (op == 0 && c == '=') {
        op = 1;
      } else {
        out += c;
      }
    }
    std::string name(trim(field));
    if (op == 0) {
      return error("requirement " + quote(trim(term)) +
                   " has no operator; expected 'field=value', 'field==value' or 'field!=value'");
    }
    if (name.empty()) return error("empty field name in " + quote(trim(term)));
    if (!field_supported(name)) {
      std::string list;
      for (std::string_view f : supported_fields()) {
        if (!list.empty()) list += ", ";
        list += f;
      }
      return error("field label not supported: " + quote(name) + " (supported: " + list + ")");
    }
    sel.requirements_.push_back(
        FieldRequirement{std::move(name), op == 1, std::string(trim(value))});
  }
  std::stable_sort(sel.requirements_.begin(), sel.requirements_.end(),
                   [](const FieldRequirement& a, const FieldRequirement& b) {
                     if (a.field != b.field) return a.field < b.field;
                     return a.equals > b.equals;
                   });
  return sel;
}

bool FieldSelector::matches(const google::protobuf::Message& object) const {
  for (const FieldRequirement& r : requirements_) {
    bool eq = field_value(object, r.field) == r.value;
    if (eq != r.equals) return false;
  }
  return true;
}

std::string FieldSelector::to_string() const {
  std::string out;
  for (const FieldRequirement& r : requirements_) {
    if (!out.empty()) out += ",";
    out += r.field;
    out += r.equals ? "=" : "!=";
    out += escape_field_value(r.value);
  }
  return out;
}

const std::string* FieldSelector::exact_value(std::string_view field) const {
  for (const FieldRequirement& r : requirements_) {
    if (r.equals && r.field == field) return &r.value;
  }
  return nullptr;
}

bool same_labels(const Labels& a, const Labels& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace flotilla::api
