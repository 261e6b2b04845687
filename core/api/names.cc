// Naming rules follow apimachinery's validation.IsDNS1123Label/Subdomain and
// names.SimpleNameGenerator.
#include "core/api/names.h"

#include <cstdio>

namespace flotilla::api {
namespace {

bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool label_chars_ok(std::string_view s) {
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

bool subdomain_chars_ok(std::string_view s) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!label_chars_ok(part)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
constexpr size_t kSuffixLength = 5;

}  // namespace

bool is_dns1123_label(std::string_view s) {
  return s.size() <= kDns1123LabelMaxLength && label_chars_ok(s);
}

bool is_dns1123_subdomain(std::string_view s) {
  return s.size() <= kDns1123SubdomainMaxLength && subdomain_chars_ok(s);
}

std::vector<std::string> dns1123_label_errors(std::string_view s) {
  std::vector<std::string> errors;
  if (s.size() > kDns1123LabelMaxLength) errors.push_back("must be no more than 63 characters");
  if (!label_chars_ok(s)) {
    errors.push_back(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')");
  }
  return errors;
}

std::vector<std::string> dns1123_subdomain_errors(std::string_view s) {
  std::vector<std::string> errors;
  if (s.size() > kDns1123SubdomainMaxLength) {
    errors.push_back("must be no more than 253 characters");
  }
  if (!subdomain_chars_ok(s)) {
    errors.push_back(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
        "regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  }
  return errors;
}

std::string new_uid(RandomStream& random) {
  uint64_t hi = random.next_u64();
  uint64_t lo = random.next_u64();
  hi = (hi & ~uint64_t{0xF000}) | uint64_t{0x4000};            // version 4
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // variant 10xx
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xFFFF),
                static_cast<unsigned>(hi & 0xFFFF), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string generate_name_suffix(RandomStream& random) {
  std::string out;
  for (size_t i = 0; i < kSuffixLength; ++i) {
    out += kAlphabet[random.next_below(kAlphabet.size())];
  }
  return out;
}

std::string generate_name(std::string_view prefix, RandomStream& random) {
  constexpr size_t kMaxPrefix = kDns1123LabelMaxLength - kSuffixLength;
  if (prefix.size() > kMaxPrefix) prefix = prefix.substr(0, kMaxPrefix);
  return std::string(prefix) + generate_name_suffix(random);
}

}  // namespace flotilla::api
