// Fuzzes the manifest codec (YAML and JSON; JSON is read as YAML, and as JSON
// when YAML cannot read it): whatever decode_manifests accepts must encode to
// JSON and to YAML that decode again to an equal message, with no new warnings.
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <string>

#include "core/api/codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace flotilla::fuzz {
namespace {

void check_round_trip(const api::DecodedObject& original, const std::string& encoded,
                      const char* format) {
  auto again = api::decode_manifests(encoded, "round-trip");
  FUZZ_CHECK(again.is_ok(), std::string(format) + " output does not decode: " +
                                again.status().to_string() + "\n--- encoded ---\n" + encoded);
  FUZZ_CHECK(again->size() == 1, std::string(format) + " output decodes to " +
                                     std::to_string(again->size()) + " objects\n" + encoded);
  const api::DecodedObject& back = again->front();
  FUZZ_CHECK(back.kind == original.kind, std::string(format) + ": kind changed\n" + encoded);
  FUZZ_CHECK(back.warnings.empty(), std::string(format) + " output has warnings: " +
                                        back.warnings.front().to_string() + "\n" + encoded);
  std::string diff;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  FUZZ_CHECK(differ.Compare(*original.object, *back.object),
             std::string(format) + " round trip changed the object:\n" + diff + "--- encoded ---\n" +
                 encoded + "--- original ---\n" + original.object->DebugString());
}

}  // namespace
}  // namespace flotilla::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  auto decoded = api::decode_manifests(fuzz::as_text(data, size), "fuzz.yaml");
  if (!decoded.is_ok()) {
    FUZZ_CHECK(!decoded.status().message().empty(), "an error without a message");
    return 0;
  }
  for (const api::DecodedObject& o : *decoded) {
    FUZZ_CHECK(o.object != nullptr, "decoded a null object");
    fuzz::check_round_trip(o, api::encode_json(*o.object), "JSON");
    fuzz::check_round_trip(o, api::encode_json(*o.object, /*pretty=*/true), "pretty JSON");
    fuzz::check_round_trip(o, api::encode_yaml(*o.object), "YAML");
  }
  return 0;
}
