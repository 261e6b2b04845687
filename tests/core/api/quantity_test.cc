#include "core/api/quantity.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace flotilla::api {
namespace {

Quantity q(std::string_view text) {
  auto r = Quantity::parse(text);
  EXPECT_TRUE(r.is_ok()) << text << ": " << r.status().message();
  return r.is_ok() ? *r : Quantity();
}

std::string canonical(std::string_view text) { return q(text).to_string(); }

TEST(QuantityTest, CanonicalFormsMatchKubernetes) {
  EXPECT_EQ(canonical("0.5"), "500m");
  EXPECT_EQ(canonical("1000m"), "1");
  EXPECT_EQ(canonical("1024Mi"), "1Gi");
  EXPECT_EQ(canonical("1.5Gi"), "1536Mi");
  EXPECT_EQ(canonical("1000"), "1k");
  EXPECT_EQ(canonical("1500"), "1500");
  EXPECT_EQ(canonical("1.5"), "1500m");
  EXPECT_EQ(canonical("128Mi"), "128Mi");
  EXPECT_EQ(canonical("1G"), "1G");
  EXPECT_EQ(canonical("1000M"), "1G");
  EXPECT_EQ(canonical("0"), "0");
  EXPECT_EQ(canonical("0Gi"), "0");
  EXPECT_EQ(canonical("-0.0"), "0");
  EXPECT_EQ(canonical("100m"), "100m");
  EXPECT_EQ(canonical("0.1"), "100m");
  EXPECT_EQ(canonical("1e3"), "1e3");
  EXPECT_EQ(canonical("1E3"), "1e3");
  EXPECT_EQ(canonical("1.5e3"), "1500");
  EXPECT_EQ(canonical("10e3"), "10e3");
  EXPECT_EQ(canonical("1e-3"), "1e-3");
  EXPECT_EQ(canonical("-1500m"), "-1500m");
  EXPECT_EQ(canonical("+2"), "2");
  EXPECT_EQ(canonical("0.5Ki"), "512");      // binary below 1Ki prints decimal
  EXPECT_EQ(canonical("0.1Ki"), "102400m");  // fractional binary prints decimal
  EXPECT_EQ(canonical("1023Ki"), "1023Ki");
  EXPECT_EQ(canonical("2048Ki"), "2Mi");
  EXPECT_EQ(canonical("1Ei"), "1Ei");
  EXPECT_EQ(canonical("1.G"), "1G");
  EXPECT_EQ(canonical(".5"), "500m");
  EXPECT_EQ(canonical("007"), "7");
  EXPECT_EQ(canonical("1n"), "1n");
  EXPECT_EQ(canonical("1u"), "1u");
  EXPECT_EQ(canonical("12E"), "12E");
  EXPECT_EQ(canonical("1000E"), "1000E");  // no suffix beyond E
}

TEST(QuantityTest, CanonicalFormParsesBackToTheSameValue) {
  for (std::string_view s : {"0.5", "1.5Gi", "123456789n", "1e-3", "7Ti", "3.14159", "1023",
                             "999999999999999999", "0.1Ki"}) {
    Quantity a = q(s);
    Quantity b = q(a.to_string());
    EXPECT_EQ(a, b) << s << " -> " << a.to_string();
    EXPECT_EQ(b.to_string(), a.to_string());
  }
}

TEST(QuantityTest, MilliValueAndValueRoundUpAwayFromZero) {
  EXPECT_EQ(q("500m").milli_value(), 500);
  EXPECT_EQ(q("1").milli_value(), 1000);
  EXPECT_EQ(q("1Ki").milli_value(), 1024000);
  EXPECT_EQ(q("1500m").value(), 2);
  EXPECT_EQ(q("1Ki").value(), 1024);
  EXPECT_EQ(q("1n").milli_value(), 1);
  EXPECT_EQ(q("1n").value(), 1);
  EXPECT_EQ(q("1001u").milli_value(), 2);
  EXPECT_EQ(q("-1500m").value(), -2);
  EXPECT_EQ(q("-1n").milli_value(), -1);
  EXPECT_EQ(q("0").value(), 0);
  EXPECT_EQ(q("128Mi").value(), 134217728);
}

TEST(QuantityTest, ParsingRoundsUpBelowOneNano) {
  EXPECT_EQ(canonical("0.1n"), "1n");
  EXPECT_EQ(canonical("1e-20"), "1e-9");  // exponent form stays
  EXPECT_EQ(canonical("0.00000000001"), "1n");
  EXPECT_EQ(canonical("1.0000000001"), "1000000001n");
  EXPECT_EQ(canonical("-0.1n"), "-1n");
  EXPECT_EQ(canonical("0e-20"), "0");
}

TEST(QuantityTest, ComparesByValueAcrossFormats) {
  EXPECT_EQ(q("1Ki"), q("1024"));
  EXPECT_EQ(q("1k"), q("1000"));
  EXPECT_EQ(q("1k"), q("1e3"));
  EXPECT_LT(q("1k"), q("1Ki"));
  EXPECT_LT(q("999m"), q("1"));
  EXPECT_GT(q("1"), q("-1"));
  EXPECT_TRUE(q("0Mi").is_zero());
  EXPECT_FALSE(q("1n").is_zero());
  EXPECT_EQ(Quantity::from_milli(250), q("250m"));
  EXPECT_EQ(Quantity::from_value(3), q("3"));
  EXPECT_EQ(Quantity::from_milli(2000).to_string(), "2");
  EXPECT_EQ(Quantity::from_value(1500).to_string(), "1500");
}

TEST(QuantityTest, InvalidFormsSayWhatIsWrong) {
  const std::string regex =
      "quantities must match the regular expression "
      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
  for (std::string_view bad : {"", "abc", "1 ", " 1", "1.5.5", "1Gb", "--1", "1Mi!", "Mi", "5KiB", "-"}) {
    auto r = Quantity::parse(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kBadRequest);
    EXPECT_EQ(r.status().message(), "quantity \"" + std::string(bad) + "\": " + regex) << bad;
  }
  for (std::string_view bad : {"1K", "1e", "1Kie", "1Ki5", "1e-", "1m3"}) {
    auto r = Quantity::parse(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().message(),
              "quantity \"" + std::string(bad) + "\": unable to parse quantity's suffix")
        << bad;
  }
  for (std::string_view bad : {".", "+.Gi", "-."}) {
    auto r = Quantity::parse(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().message(),
              "quantity \"" + std::string(bad) + "\": unable to parse numeric part of quantity");
  }
}

TEST(QuantityTest, OverflowIsAnErrorNotAWrap) {
  auto huge = Quantity::parse("1e40");
  ASSERT_FALSE(huge.is_ok());
  EXPECT_EQ(huge.status().message(), "quantity \"1e40\": quantity is too large");
  EXPECT_FALSE(Quantity::parse("1e99999999999999").is_ok());
  EXPECT_FALSE(Quantity::parse("123456789012345678901234567890123456789012").is_ok());
  // An exponent too large for int64 is a suffix error, as in Kubernetes.
  EXPECT_FALSE(Quantity::parse("1e99999999999999999999").is_ok());
  // Large but representable: beyond int64, accessors saturate.
  Quantity big = q("100E");
  EXPECT_EQ(big.to_string(), "100E");
  EXPECT_EQ(big.value(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(q("-100E").milli_value(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(q("9E").milli_value(), std::numeric_limits<int64_t>::max());
  // Binary quantities are capped at 2^63-1 as Kubernetes does.
  EXPECT_EQ(q("16Ei").value(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(q("16Ei").to_string(), "9223372036854775807");
  EXPECT_EQ(q("8Ei").to_string(), "9223372036854775807");
  EXPECT_EQ(q("7Ei").to_string(), "7Ei");
}

TEST(QuantityTest, TinyExponentsDoNotLoop) {
  EXPECT_EQ(canonical("1e-99999999999"), "1e-9");
  EXPECT_EQ(canonical("0e99999999999"), "0");
}

}  // namespace
}  // namespace flotilla::api
