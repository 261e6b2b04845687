// Resource quantities parsed exactly as Kubernetes does ("500m", "1.5", "128Mi",
// "1G", "1e3", "0.1Ki"): a decimal number with an optional binary (Ki..Ei) or
// decimal (n, u, m, k, M, G, T, P, E) suffix or exponent. Values are exact in
// milli-units within int64 range; canonical output matches Kubernetes' form.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/util/status.h"

namespace flotilla::api {

class Quantity {
 public:
  Quantity() = default;
  // Errors name the text and say what is wrong (kBadRequest), e.g.
  // `quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`.
  // Values are rounded up (away from zero) to 1n like Kubernetes; binary
  // quantities are capped at 2^63-1 like Kubernetes; a magnitude beyond about
  // 1.7e29 cannot be represented and is an error ("quantity is too large").
  static StatusOr<Quantity> parse(std::string_view text);
  static Quantity from_milli(int64_t milli);
  static Quantity from_value(int64_t value);

  // The value in thousandths, rounded up (Kubernetes MilliValue): "500m" -> 500,
  // "1" -> 1000, "1Ki" -> 1024000.
  int64_t milli_value() const;
  // The value rounded up to an integer (Kubernetes Value): "1500m" -> 2, "1Ki" -> 1024.
  int64_t value() const;
  // Canonical form as Kubernetes prints it: "500m", "2", "128Mi", "1G".
  std::string to_string() const;
  bool is_zero() const;

  friend auto operator<=>(const Quantity& a, const Quantity& b) { return a.compare(b) <=> 0; }
  friend bool operator==(const Quantity& a, const Quantity& b) { return a.compare(b) == 0; }

 private:
  int compare(const Quantity& o) const;
  // The exact value in nano-units (Kubernetes rounds every parsed quantity up
  // to 1n precision), so int64-range quantities are exact; format_ remembers
  // the suffix family for canonical output.
  enum class Format { kDecimalSI, kBinarySI, kDecimalExponent };
  __extension__ typedef __int128 Int128;
  Int128 nanos_ = 0;
  Format format_ = Format::kDecimalSI;
};

}  // namespace flotilla::api
