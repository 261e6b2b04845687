// Quantities with Kubernetes' resource.Quantity semantics, held exactly as a
// 128-bit count of nano-units. Parsing follows apimachinery's
// parseQuantityString + ParseQuantity; canonical output follows
// CanonicalizeBytes (exponents in multiples of three, binary suffixes only for
// exact multiples of 1024).
#include "core/api/quantity.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace flotilla::api {
namespace {

__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 UInt128;

constexpr std::string_view kFormatWrong =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
constexpr std::string_view kNumeric = "unable to parse numeric part of quantity";
constexpr std::string_view kSuffix = "unable to parse quantity's suffix";

constexpr Int128 kNano = 1000000000;
constexpr Int128 kInt128Max = static_cast<Int128>(~static_cast<UInt128>(0) >> 1);

bool is_digit(char c) { return c >= '0' && c <= '9'; }

Status parse_error(std::string_view text, std::string_view why) {
  return Status(StatusCode::kBadRequest,
                "quantity \"" + std::string(text) + "\": " + std::string(why));
}

// The pieces of a quantity string, as apimachinery's parseQuantityString
// splits them.
struct Pieces {
  bool positive = true;
  std::string_view num;    // integer digits, leading zeros stripped
  std::string_view denom;  // fraction digits
  std::string_view suffix;
  bool any_digit = false;
  bool any_numeric = false;  // a digit or a '.' ([0-9.]+ in the regular expression)
};

// Returns false when the text does not have the shape of a quantity.
bool split(std::string_view s, Pieces& p) {
  size_t pos = 0;
  const size_t end = s.size();
  if (pos < end && (s[0] == '-' || s[0] == '+')) {
    p.positive = s[0] == '+';
    ++pos;
  }
  while (pos < end && s[pos] == '0') {
    ++pos;
    p.any_digit = true;
  }
  size_t i = pos;
  while (i < end && is_digit(s[i])) ++i;
  p.num = s.substr(pos, i - pos);
  if (!p.num.empty()) p.any_digit = true;
  pos = i;
  if (pos < end && s[pos] == '.') {
    p.any_numeric = true;
    ++pos;
    i = pos;
    while (i < end && is_digit(s[i])) ++i;
    p.denom = s.substr(pos, i - pos);
    if (!p.denom.empty()) p.any_digit = true;
    pos = i;
  }
  if (p.any_digit) p.any_numeric = true;
  if (!p.any_numeric) return false;
  const size_t suffix_start = pos;
  constexpr std::string_view kSuffixChars = "eEinumkKMGTP";
  while (pos < end && kSuffixChars.find(s[pos]) != std::string_view::npos) ++pos;
  if (pos < end && (s[pos] == '-' || s[pos] == '+')) ++pos;
  while (pos < end && is_digit(s[pos])) ++pos;
  if (pos != end) return false;
  p.suffix = s.substr(suffix_start);
  return true;
}

struct Suffix {
  int base = 10;       // 10 or 2
  int64_t exponent = 0;  // power of `base`
  bool exponent_form = false;
};

bool interpret_suffix(std::string_view s, Suffix& out) {
  static constexpr std::pair<std::string_view, int> kDecimal[] = {
      {"n", -9}, {"u", -6}, {"m", -3}, {"", 0},   {"k", 3},
      {"M", 6},  {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  static constexpr std::pair<std::string_view, int> kBinary[] = {
      {"Ki", 10}, {"Mi", 20}, {"Gi", 30}, {"Ti", 40}, {"Pi", 50}, {"Ei", 60}};
  for (const auto& [name, exp] : kDecimal) {
    if (s == name) {
      out = {10, exp, false};
      return true;
    }
  }
  for (const auto& [name, exp] : kBinary) {
    if (s == name) {
      out = {2, exp, false};
      return true;
    }
  }
  if (s.size() > 1 && (s[0] == 'e' || s[0] == 'E')) {
    std::string_view digits = s.substr(1);
    if (digits[0] == '+') digits.remove_prefix(1);  // Go's ParseInt accepts a '+'
    int64_t e = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), e);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) return false;
    out = {10, e, true};
    return true;
  }
  return false;
}

// Doubles a decimal digit string in place.
void double_digits(std::string& d) {
  int carry = 0;
  for (auto it = d.rbegin(); it != d.rend(); ++it) {
    int v = (*it - '0') * 2 + carry;
    *it = static_cast<char>('0' + v % 10);
    carry = v / 10;
  }
  if (carry) d.insert(d.begin(), static_cast<char>('0' + carry));
}

std::string int128_to_string(Int128 v) {
  if (v == 0) return "0";
  bool negative = v < 0;
  UInt128 u = negative ? static_cast<UInt128>(-(v + 1)) + 1 : static_cast<UInt128>(v);
  std::string out;
  while (u > 0) {
    out.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  }
  if (negative) out.push_back('-');
  std::reverse(out.begin(), out.end());
  return out;
}

// |v| / d rounded away from zero, saturated to int64.
int64_t scaled_round_up(Int128 v, Int128 d) {
  Int128 q = v / d;
  if (v % d != 0) q += v < 0 ? -1 : 1;
  if (q > std::numeric_limits<int64_t>::max()) return std::numeric_limits<int64_t>::max();
  if (q < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(q);
}

}  // namespace

StatusOr<Quantity> Quantity::parse(std::string_view text) {
  if (text.empty()) return parse_error(text, kFormatWrong);
  Pieces p;
  if (!split(text, p)) return parse_error(text, kFormatWrong);
  if (!p.any_digit) return parse_error(text, kNumeric);
  Suffix suffix;
  if (!interpret_suffix(p.suffix, suffix)) return parse_error(text, kSuffix);

  Quantity q;
  q.format_ = suffix.base == 2          ? Format::kBinarySI
              : suffix.exponent_form    ? Format::kDecimalExponent
                                        : Format::kDecimalSI;

  // value = digits * 10^-scale (* 2^binary exponent)
  std::string digits = std::string(p.num) + std::string(p.denom);
  digits.erase(0, std::min(digits.find_first_not_of('0'), digits.size()));
  constexpr int64_t kClamp = int64_t{1} << 40;  // far beyond any representable exponent
  int64_t exp10 = std::clamp<int64_t>(suffix.exponent, -kClamp, kClamp);
  int64_t scale = static_cast<int64_t>(p.denom.size());
  if (suffix.base == 10) {
    scale -= exp10;
  } else {
    for (int64_t i = 0; i < suffix.exponent && !digits.empty(); ++i) double_digits(digits);
  }

  Int128 nanos = 0;
  if (!digits.empty()) {
    // Shift to nano-units, rounding up what falls below 1n.
    int64_t shift = 9 - scale;
    bool round_up = false;
    if (shift < 0) {
      int64_t drop = -shift;
      if (drop >= static_cast<int64_t>(digits.size())) {
        digits.clear();
        round_up = true;
      } else {
        auto cut = digits.end() - drop;
        round_up = std::any_of(cut, digits.end(), [](char c) { return c != '0'; });
        digits.erase(cut, digits.end());
      }
    } else {
      if (static_cast<int64_t>(digits.size()) + shift > 39) {
        return parse_error(text, "quantity is too large");
      }
      digits.append(static_cast<size_t>(shift), '0');
    }
    UInt128 u = 0;
    const UInt128 limit = static_cast<UInt128>(kInt128Max);
    for (char c : digits) {
      if (u > (limit - static_cast<UInt128>(c - '0')) / 10) {
        return parse_error(text, "quantity is too large");
      }
      u = u * 10 + static_cast<UInt128>(c - '0');
    }
    if (round_up) {
      if (u == limit) return parse_error(text, "quantity is too large");
      ++u;
    }
    nanos = static_cast<Int128>(u);
  }

  // Kubernetes caps binary quantities at the largest int64.
  const Int128 max_allowed = static_cast<Int128>(std::numeric_limits<int64_t>::max()) * kNano;
  if (q.format_ == Format::kBinarySI && nanos > max_allowed) nanos = max_allowed;
  if (q.format_ == Format::kBinarySI && nanos > 0 && nanos < kNano) q.format_ = Format::kDecimalSI;
  q.nanos_ = p.positive ? nanos : -nanos;
  return q;
}

Quantity Quantity::from_milli(int64_t milli) {
  Quantity q;
  q.nanos_ = static_cast<Int128>(milli) * 1000000;
  return q;
}

Quantity Quantity::from_value(int64_t value) {
  Quantity q;
  q.nanos_ = static_cast<Int128>(value) * kNano;
  return q;
}

int64_t Quantity::milli_value() const { return scaled_round_up(nanos_, 1000000); }

int64_t Quantity::value() const { return scaled_round_up(nanos_, kNano); }

bool Quantity::is_zero() const { return nanos_ == 0; }

int Quantity::compare(const Quantity& o) const {
  return nanos_ < o.nanos_ ? -1 : nanos_ > o.nanos_ ? 1 : 0;
}

std::string Quantity::to_string() const {
  if (nanos_ == 0) return "0";
  Format format = format_;
  if (format == Format::kBinarySI) {
    // Small or fractional binary quantities print in decimal, never rounded.
    if ((nanos_ > -1024 * kNano && nanos_ < 1024 * kNano) || nanos_ % kNano != 0) {
      format = Format::kDecimalSI;
    }
  }
  if (format == Format::kBinarySI) {
    static constexpr std::string_view kBinary[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    Int128 v = nanos_ / kNano;
    int e = 0;
    while (e < 6 && v % 1024 == 0) {
      v /= 1024;
      ++e;
    }
    return int128_to_string(v) + std::string(kBinary[e]);
  }
  // Decimal: mantissa * 10^exponent with the exponent a multiple of three.
  Int128 m = nanos_;
  int e = -9;
  while (m % 10 == 0) {
    m /= 10;
    ++e;
  }
  while (e % 3 != 0) {
    m *= 10;
    --e;
  }
  if (format == Format::kDecimalExponent) {
    return int128_to_string(m) + (e == 0 ? std::string() : "e" + std::to_string(e));
  }
  while (e > 18) {
    m *= 1000;
    e -= 3;
  }
  static constexpr std::string_view kDecimal[] = {"n", "u", "m", "", "k", "M", "G", "T", "P", "E"};
  return int128_to_string(m) + std::string(kDecimal[(e + 9) / 3]);
}

}  // namespace flotilla::api
