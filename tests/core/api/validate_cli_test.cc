// Runs the built `flotilla` binary on manifests and checks exit codes and output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CliRun flotilla(const std::string& args) {
  std::string cmd = std::string("cd '") + FLOTILLA_SOURCE_DIR + "' && '" + FLOTILLA_BINARY + "' " +
                    args + " 2>&1";
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

using ::testing::HasSubstr;

TEST(ValidateCliTest, ExampleManifestIsValid) {
  CliRun r = flotilla("validate examples/apache-rc.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "examples/apache-rc.yaml: 2 objects valid\n");
}

TEST(ValidateCliTest, ReportsOneLinePerProblem) {
  CliRun r = flotilla("validate tests/core/api/testdata/bad-rc.yaml");
  EXPECT_EQ(r.exit_code, 1);
  const std::string p = "tests/core/api/testdata/bad-rc.yaml: ReplicationController/Web_Server: ";
  EXPECT_THAT(r.output, HasSubstr(p + "spec.replicas: Invalid value: -1: must be greater than or "
                                      "equal to 0\n"));
  EXPECT_THAT(r.output, HasSubstr(p + "spec.template.spec.containers[0].image: Required value\n"));
  EXPECT_THAT(r.output, HasSubstr(p + "spec.template.spec.containers[0].volumeMounts[0].name: Not "
                                      "found: \"missing\"\n"));
  EXPECT_THAT(r.output, HasSubstr(p + "spec.template.spec.restartPolicy: Unsupported value: "
                                      "\"OnFailure\": supported values: \"Always\"\n"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("valid\n")));
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 10);
}

TEST(ValidateCliTest, UnknownFieldsAreWarningsOnly) {
  CliRun r = flotilla("validate tests/core/api/testdata/unknown-field.yaml");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("tests/core/api/testdata/unknown-field.yaml:9: warning: "
                                  "Pod/web-1: spec.containers[0].imagePullSecretz: unknown field\n"));
  EXPECT_THAT(r.output, HasSubstr("tests/core/api/testdata/unknown-field.yaml: 1 object valid\n"));
}

TEST(ValidateCliTest, SyntaxAndTypeErrorsCarryPositions) {
  CliRun r = flotilla("validate tests/core/api/testdata/syntax-error.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, ::testing::MatchesRegex(
                            "tests/core/api/testdata/syntax-error.yaml:[0-9]+:[0-9]+: invalid YAML: .*\n"));
  CliRun t = flotilla("validate tests/core/api/testdata/type-error.yaml");
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_EQ(t.output, "tests/core/api/testdata/type-error.yaml:6:13: spec.replicas: expected an "
                      "integer, got \"three\"\n");
}

TEST(ValidateCliTest, JsonInputAndSeveralFiles) {
  CliRun r = flotilla("validate examples/apache-rc.yaml tests/core/api/testdata/bad-service.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("examples/apache-rc.yaml: 2 objects valid\n"));
  EXPECT_THAT(r.output, HasSubstr("tests/core/api/testdata/bad-service.json: Service/web: "
                                  "spec.ports[1].name: Duplicate value: \"http\"\n"));
}

TEST(ValidateCliTest, MissingFilesAndDirectories) {
  CliRun r = flotilla("validate no-such-file.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, "no-such-file.yaml: no such file or directory\n");
  CliRun d = flotilla("validate tests");
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_EQ(d.output, "tests: is a directory\n");
  CliRun none = flotilla("validate");
  EXPECT_NE(none.exit_code, 0);
}

TEST(ValidateCliTest, NeverCrashesOnGarbage) {
  std::string path = std::string(FLOTILLA_BINARY_DIR) + "/validate_cli_garbage.yaml";
  uint64_t x = 12345;
  for (int round = 0; round < 20; ++round) {
    std::string text;
    for (int i = 0; i < 400; ++i) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      const char alphabet[] = "apiVersion: v1\nkind: Pod\n-[]{}\"'&*!|>:#,\t 0123456789\xff";
      text += alphabet[(x >> 33) % (sizeof alphabet - 1)];
    }
    std::ofstream(path, std::ios::binary) << text;
    CliRun r = flotilla("validate '" + path + "'");
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.exit_code << "\n" << text;
  }
}

}  // namespace
