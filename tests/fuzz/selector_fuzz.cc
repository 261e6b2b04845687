// Fuzzes label and field selectors: whatever parses must print (to_string) as
// text that parses to an equal selector and prints the same again, and must
// evaluate without crashing. The first byte picks label or field selector.
#include <cstdint>
#include <string>

#include "core/api/labels.h"
#include "core/api/types.pb.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  std::string_view text = fuzz::as_text(data, size);

  auto label = api::LabelSelector::parse(text);
  if (label.is_ok()) {
    std::string printed = label->to_string();
    auto again = api::LabelSelector::parse(printed);
    FUZZ_CHECK(again.is_ok(), "label selector \"" + std::string(text) + "\" prints as \"" + printed +
                                  "\" which does not parse: " + again.status().to_string());
    FUZZ_CHECK(*again == *label, "label selector \"" + std::string(text) + "\" prints as \"" +
                                     printed + "\" which parses as \"" + again->to_string() + "\"");
    FUZZ_CHECK(again->to_string() == printed, "to_string is not canonical: \"" + printed +
                                                  "\" then \"" + again->to_string() + "\"");
    // Evaluate against labels built from the selector's own terms.
    api::Labels labels;
    for (const auto& r : label->requirements()) {
      labels[r.key] = r.values.empty() ? "" : r.values.front();
    }
    (void)label->matches(labels);
    (void)api::LabelSelector::from_map(labels).matches(labels);
  } else {
    FUZZ_CHECK(!label.status().message().empty(), "an error without a message");
  }

  auto field = api::FieldSelector::parse(text);
  if (field.is_ok()) {
    std::string printed = field->to_string();
    auto again = api::FieldSelector::parse(printed);
    FUZZ_CHECK(again.is_ok(), "field selector \"" + std::string(text) + "\" prints as \"" + printed +
                                  "\" which does not parse: " + again.status().to_string());
    FUZZ_CHECK(*again == *field, "field selector \"" + std::string(text) + "\" prints as \"" +
                                     printed + "\" which parses as \"" + again->to_string() + "\"");
    FUZZ_CHECK(again->to_string() == printed, "to_string is not canonical: \"" + printed +
                                                  "\" then \"" + again->to_string() + "\"");
    flotilla::api::Pod pod;
    pod.mutable_metadata()->set_name(std::string(text.substr(0, 16)));
    (void)field->matches(pod);
  } else {
    FUZZ_CHECK(!field.status().message().empty(), "an error without a message");
  }
  return 0;
}
