// Runs the built `flotilla sim` and `flotilla analyze` on a scenario that fits
// the models (exponential machine failures, Poisson traffic to single-server
// pods) and holds the measured figures against theory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

namespace {

struct CliRun {
  int exit_code = -1;
  std::string output;
};

CliRun flotilla(const std::string& args) {
  std::string cmd = std::string("'") + FLOTILLA_BINARY + "' " + args + " 2>&1";
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

struct Row {
  double measured = 0;
  double predicted = 0;
};

// "  <what>   <measured> <predicted>  <unit>" lines, keyed by <what>.
std::map<std::string, Row> rows(const std::string& output) {
  std::map<std::string, Row> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 60 || line.rfind("  ", 0) != 0) continue;
    std::string what = line.substr(2, 52);
    while (!what.empty() && what.back() == ' ') what.pop_back();
    std::istringstream nums(line.substr(54));
    Row r;
    if (nums >> r.measured >> r.predicted) out[what] = r;
  }
  return out;
}

TEST(AnalyzeCliTest, MeasuredFiguresMatchTheModels) {
  const std::string dir = std::string(FLOTILLA_BINARY_DIR) + "/analyze_cli_test_out";
  std::filesystem::remove_all(dir);
  CliRun sim = flotilla(std::string("sim '") + FLOTILLA_SOURCE_DIR +
                        "/tests/analysis/testdata/queueing.yaml' --out '" + dir +
                        "' --no-report --quiet");
  ASSERT_EQ(sim.exit_code, 0) << sim.output;
  CliRun analyze = flotilla("analyze '" + dir + "'");
  ASSERT_EQ(analyze.exit_code, 0) << analyze.output;
  auto r = rows(analyze.output);

  // Machines: MTTF 4 h, MTTR 30 min -> 0.889 available; 10 machines for 6 h
  // see ~15 failures, so the measured fraction is within a few points.
  ASSERT_EQ(r.count("machine availability (1 - downtime)"), 1u) << analyze.output;
  const Row& machines = r["machine availability (1 - downtime)"];
  EXPECT_NEAR(machines.predicted, 4.0 / 4.5, 1e-6);
  EXPECT_NEAR(machines.measured, machines.predicted, 0.06) << analyze.output;

  // Latency: round-robin over 2 single servers (lambda 25/s each, mu 100/s)
  // queues less than random balancing (M/M/1 each) and more than one shared
  // queue (M/M/2); network round trips add a little.
  const std::string random = "default/web mean latency, M/M/1 x2 random";
  const std::string shared = "default/web mean latency, M/M/2 (shared queue)";
  ASSERT_EQ(r.count(random), 1u) << analyze.output;
  ASSERT_EQ(r.count(shared), 1u) << analyze.output;
  EXPECT_NEAR(r[random].predicted, 1000.0 / (100 - 25), 1e-3);
  EXPECT_GT(r[random].measured, r[shared].predicted) << analyze.output;
  EXPECT_LT(r[random].measured, r[random].predicted + 1.0) << analyze.output;

  std::filesystem::remove_all(dir);
}

TEST(AnalyzeCliTest, MissingSummaryIsAClearError) {
  CliRun r = flotilla("analyze /nonexistent-flotilla-dir");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output, "flotilla analyze: cannot read /nonexistent-flotilla-dir/summary.json\n");
}

}  // namespace
