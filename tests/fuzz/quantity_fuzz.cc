// Fuzzes resource quantities: whatever parses prints in a form that parses to
// an equal value, and printing is stable after one round; milli_value/value
// never trap (UBSan would report signed overflow).
#include <cstdint>
#include <string>

#include "core/api/quantity.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  std::string_view text = fuzz::as_text(data, size);
  auto q = api::Quantity::parse(text);
  if (!q.is_ok()) {
    FUZZ_CHECK(!q.status().message().empty(), "an error without a message");
    return 0;
  }
  std::string printed = q->to_string();
  auto again = api::Quantity::parse(printed);
  FUZZ_CHECK(again.is_ok(), "\"" + std::string(text) + "\" prints as \"" + printed +
                                "\" which does not parse: " + again.status().to_string());
  FUZZ_CHECK(*again == *q, "\"" + std::string(text) + "\" prints as \"" + printed +
                               "\" which parses as \"" + again->to_string() + "\"");
  // Printing may change the form once, as in Kubernetes: a binary quantity
  // that is not a multiple of 1024 prints without a suffix ("9444389696000")
  // and reads back as decimal ("9444389696k"). After that it is stable.
  std::string second = again->to_string();
  auto third = api::Quantity::parse(second);
  FUZZ_CHECK(third.is_ok() && *third == *q && third->to_string() == second,
             "not canonical: \"" + printed + "\" then \"" + second + "\"");
  FUZZ_CHECK(again->milli_value() == q->milli_value(), "milli value changed for \"" + printed + "\"");
  FUZZ_CHECK(q->is_zero() == (*q == api::Quantity()), "is_zero disagrees for \"" + printed + "\"");
  (void)q->value();
  return 0;
}
