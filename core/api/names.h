// Kubernetes naming rules and generated names: DNS-1123 labels and subdomains
// (what object names must be), UIDs and generateName suffixes. Randomness comes
// from a RandomStream port, so the simulator's names are reproducible.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/ports/random.h"

namespace flotilla::api {

inline constexpr size_t kDns1123LabelMaxLength = 63;
inline constexpr size_t kDns1123SubdomainMaxLength = 253;

// RFC 1123 label: at most 63 lowercase alphanumerics or '-', starting and
// ending alphanumeric ("web-1").
bool is_dns1123_label(std::string_view s);
// RFC 1123 subdomain: at most 253 characters of dot-separated labels ("a.b-c").
bool is_dns1123_subdomain(std::string_view s);

// Why `s` is not a DNS-1123 label/subdomain, in Kubernetes' words (empty when
// it is one). E.g. "must be no more than 63 characters" and "a lowercase RFC
// 1123 label must consist of lower case alphanumeric characters or '-', and
// must start and end with an alphanumeric character (e.g. 'my-name',  or
// '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".
std::vector<std::string> dns1123_label_errors(std::string_view s);
std::vector<std::string> dns1123_subdomain_errors(std::string_view s);

// A random RFC 4122 version 4 UID: "8d6f3a7e-0c2b-4f4e-9a51-2b7c1d0e9f33".
std::string new_uid(RandomStream& random);
// Five characters from Kubernetes' alphabet "bcdfghjklmnpqrstvwxz2456789",
// appended to a generateName prefix.
std::string generate_name_suffix(RandomStream& random);
// generateName semantics: the prefix (truncated so the whole stays within 63
// characters, as Kubernetes does) followed by a random suffix.
std::string generate_name(std::string_view prefix, RandomStream& random);

}  // namespace flotilla::api
