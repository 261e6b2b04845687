#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis/metrics.h"
#include "analysis/models.h"
#include "analysis/report.h"
#include "analysis/stats.h"
#include "analysis/trace_io.h"
#include "tests/scratch_dir.h"

namespace flotilla::analysis {
namespace {

std::string temp_path(const std::string& name) {
  return (flotilla::testing::scratch_root("analysis") / name).string();
}

trace::Record rec(double t_s, trace::EventType type) {
  trace::Record r;
  r.set_time_ns(static_cast<int64_t>(t_s * 1e9));
  r.set_type(type);
  return r;
}

TEST(Stats, PercentileInterpolatesLikeNumpy) {
  std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 1.0), 4);
  EXPECT_NEAR(percentile(v, 0.9), 3.7, 1e-12);
  EXPECT_TRUE(std::isnan(percentile({}, 0.5)));
}

TEST(Stats, StudentTCriticalMatchesTables) {
  EXPECT_NEAR(student_t_critical(0.95, 1), 12.706, 1e-3);
  EXPECT_NEAR(student_t_critical(0.95, 4), 2.776, 1e-3);
  EXPECT_NEAR(student_t_critical(0.95, 30), 2.042, 1e-3);
  EXPECT_NEAR(student_t_critical(0.99, 10), 3.169, 1e-3);
}

TEST(Stats, ConfidenceInterval) {
  Eigen::VectorXd x(5);
  x << 10, 12, 11, 13, 9;
  Interval ci = confidence_interval(x);
  EXPECT_DOUBLE_EQ(ci.mean, 11);
  EXPECT_NEAR(ci.stddev, std::sqrt(2.5), 1e-12);
  EXPECT_NEAR(ci.half_width, 2.776 * std::sqrt(2.5) / std::sqrt(5.0), 1e-3);
  Eigen::VectorXd one(1);
  one << 3;
  EXPECT_EQ(confidence_interval(one).half_width, 0);
}

TEST(Models, KOfNClosedFormAndMarkovChainAgree) {
  // 3 nodes, each 99% available: at least 2 up.
  double a = k_of_n_availability(3, 2, 99, 1);
  double p = 0.99;
  EXPECT_NEAR(a, p * p * p + 3 * p * p * (1 - p), 1e-12);
  EXPECT_NEAR(k_of_n_availability_ctmc(3, 2, 99, 1, 3), a, 1e-9);
  // One repair crew is worse than three.
  EXPECT_LT(k_of_n_availability_ctmc(3, 2, 99, 1, 1), a);
  EXPECT_DOUBLE_EQ(k_of_n_availability(3, 4, 99, 1), 0);
  EXPECT_DOUBLE_EQ(k_of_n_availability(3, 0, 99, 1), 1);
}

TEST(Models, QueueFormulas) {
  QueueModel m = mm1(8, 10);
  ASSERT_TRUE(m.stable);
  EXPECT_NEAR(m.mean_response_s, 0.5, 1e-12);
  EXPECT_NEAR(m.p99_response_s, std::log(100.0) / 2, 1e-12);
  EXPECT_FALSE(mm1(10, 10).stable);
  // M/M/c with c = 1 is M/M/1.
  QueueModel c1 = mmc(8, 10, 1);
  EXPECT_NEAR(c1.mean_response_s, 0.5, 1e-9);
  EXPECT_NEAR(c1.p99_response_s, m.p99_response_s, 1e-6);
  // Random balancing over 3 pods: each sees lambda / 3.
  EXPECT_NEAR(mm1_random_balancing(24, 10, 3).mean_response_s, 0.5, 1e-12);
  // A shared queue beats random balancing at the same load.
  EXPECT_LT(mmc(24, 10, 3).mean_response_s, 0.5);
  // Erlang C for a = 2, c = 3: P(wait) = 4/9.
  EXPECT_NEAR(mmc(2, 1, 3).probability_wait, 4.0 / 9.0, 1e-12);
}

TEST(TraceIo, RoundTripIsDeterministicAndDigested) {
  std::string p1 = temp_path("a.pb"), p2 = temp_path("b.pb");
  std::string d1, d2;
  for (const std::string& p : {p1, p2}) {
    auto sink = FileTraceSink::open(p);
    ASSERT_TRUE(sink.is_ok()) << sink.status().to_string();
    for (int i = 0; i < 1000; ++i) {
      trace::Record r = rec(i, trace::REQUEST_SERVED);
      r.set_service("default/web");
      (*r.mutable_attrs())["z"] = "1";
      (*r.mutable_attrs())["a"] = std::to_string(i);
      (*sink)->record(r);
    }
    ASSERT_TRUE((*sink)->close().is_ok());
    (p == p1 ? d1 : d2) = (*sink)->sha256_hex();
  }
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(d1.size(), 64u);
  EXPECT_EQ(*sha256_file(p1), d1);
  int n = 0;
  ASSERT_TRUE(read_trace(p1, [&](const trace::Record& r) {
                EXPECT_EQ(r.time_ns(), static_cast<int64_t>(n) * 1000000000);
                ++n;
                return true;
              }).is_ok());
  EXPECT_EQ(n, 1000);
}

TEST(TraceIo, TornLastRecordIsReportedNotSkipped) {
  std::string p = temp_path("torn.pb");
  {
    auto sink = FileTraceSink::open(p);
    ASSERT_TRUE(sink.is_ok());
    for (int i = 0; i < 3; ++i) (*sink)->record(rec(i, trace::NODE_ADDED));
    ASSERT_TRUE((*sink)->close().is_ok());
  }
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 1);
  int n = 0;
  Status s = read_trace(p, [&](const trace::Record&) { return ++n, true; });
  EXPECT_EQ(s.code(), StatusCode::kBadRequest);
  EXPECT_NE(s.message().find("record 2"), std::string::npos) << s.message();
  EXPECT_EQ(n, 2);
  EXPECT_EQ(read_trace(temp_path("missing.pb"), [](const trace::Record&) { return true; }).code(),
            StatusCode::kNotFound);
}

TEST(Metrics, AvailabilityIsTimeWeightedFromFirstReady) {
  MetricsCollector c(kTimeZero, seconds(10));
  auto ep = [](double t, bool add) {
    trace::Record r = rec(t, add ? trace::ENDPOINT_ADDED : trace::ENDPOINT_REMOVED);
    r.set_service("default/web");
    return r;
  };
  c.add(ep(10, true));   // ready from t=10
  c.add(ep(20, true));   // 2 ready
  c.add(ep(50, false));  // 1
  c.add(ep(60, false));  // 0 until 70
  c.add(ep(70, true));
  c.finish(time_from_nanos(110'000'000'000));
  const ServiceMetrics& s = c.metrics().services.at("default/web");
  // Window 10..110 = 100 s; 0 ready for 10 s.
  EXPECT_NEAR(s.availability, 0.9, 1e-12);
  EXPECT_NEAR(s.ready_endpoints_time_fraction.at(2), 0.3, 1e-12);
  EXPECT_NEAR(s.ready_endpoints_time_fraction.at(1), 0.6, 1e-12);
  EXPECT_NEAR(s.ready_endpoints_time_fraction.at(0), 0.1, 1e-12);
  // Time series: ready endpoints at the end of each 10 s bucket.
  const auto& v = c.series().ready_endpoints.at("default/web");
  ASSERT_GE(v.size(), 7u);
  // Buckets are (start, end]: a change at exactly 20 s is in the bucket ending at 20 s.
  EXPECT_EQ(v[0], 1);
  EXPECT_EQ(v[1], 2);
  EXPECT_EQ(v[4], 1);
  EXPECT_EQ(v[5], 0);
  EXPECT_EQ(v[6], 1);
}

TEST(Metrics, RequestsNodesPodsAndControllers) {
  MetricsCollector c(kTimeZero, seconds(1));
  // Records arrive in time order, as in a trace.
  for (const char* n : {"n1", "n2"}) {
    trace::Record r = rec(0, trace::NODE_ADDED);
    r.set_node(n);
    c.add(r);
  }
  trace::Record created = rec(0, trace::POD_CREATED);
  created.set_uid("u1");
  c.add(created);
  trace::Record rc = rec(0, trace::REPLICAS_CHANGED);
  rc.set_namespace_("default");
  rc.set_name("web");
  rc.set_value(3);
  rc.set_value2(3);
  c.add(rc);
  for (int i = 1; i <= 100; ++i) {
    trace::Record r = rec(i * 0.1, trace::REQUEST_SERVED);
    r.set_service("default/web");
    r.set_latency_ns(i * 1'000'000);
    c.add(r);
    if (i == 20) {
      trace::Record sched = rec(2, trace::POD_SCHEDULED);
      sched.set_uid("u1");
      c.add(sched);
    }
  }
  trace::Record f = rec(10, trace::REQUEST_FAILED);
  f.set_service("default/web");
  c.add(f);
  trace::Record down = rec(20, trace::NODE_DOWN);
  down.set_node("n1");
  c.add(down);
  trace::Record up = rec(30, trace::NODE_UP);
  up.set_node("n1");
  c.add(up);
  rc.set_time_ns(40'000'000'000);
  rc.set_value2(2);
  c.add(rc);
  rc.set_time_ns(50'000'000'000);
  rc.set_value2(3);
  c.add(rc);
  trace::Record created2 = rec(50, trace::POD_CREATED);
  created2.set_uid("u2");
  c.add(created2);
  c.finish(time_from_nanos(100'000'000'000));
  const Metrics& m = c.metrics();
  const ServiceMetrics& s = m.services.at("default/web");
  EXPECT_EQ(s.requests_total, 101);
  EXPECT_EQ(s.requests_failed, 1);
  EXPECT_NEAR(s.latency_p50_ms, 50.5, 1e-9);
  EXPECT_NEAR(s.latency_mean_ms, 50.5, 1e-9);
  EXPECT_EQ(m.nodes.count, 2);
  EXPECT_EQ(m.nodes.failures, 1);
  EXPECT_NEAR(m.nodes.downtime_fraction, 10.0 / 200.0, 1e-12);
  EXPECT_NEAR(m.nodes.mttr_s, 10, 1e-12);
  EXPECT_EQ(m.pods.created, 2);
  EXPECT_EQ(m.pods.scheduled, 1);
  EXPECT_NEAR(m.pods.scheduling_latency_p50_ms, 2000, 1e-9);
  EXPECT_EQ(m.pods.pending_at_end, 1);
  EXPECT_NEAR(m.pods.max_pending_s, 50, 1e-9);
  EXPECT_NEAR(m.controllers.at("default/web").ready_time_fraction, 0.9, 1e-12);
  auto j = metrics_to_json(m);
  EXPECT_EQ(j["services"]["default/web"]["requests"]["failed"], 1);
  EXPECT_EQ(j["nodes"]["failures"], 1);
}

TEST(Metrics, CsvFilesAreWritten) {
  MetricsCollector c(kTimeZero, seconds(1));
  trace::Record r = rec(0.5, trace::REQUEST_SERVED);
  r.set_service("default/web");
  r.set_latency_ns(3'000'000);
  c.add(r);
  c.finish(time_from_nanos(3'000'000'000));
  std::string dir = temp_path("csv");
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(write_time_series_csv(c, dir).is_ok());
  std::ifstream f(dir + "/requests.csv");
  std::string header, first;
  std::getline(f, header);
  std::getline(f, first);
  EXPECT_EQ(header, "t_s,requests,failed,error_rate,latency_p50_ms,latency_p99_ms");
  EXPECT_EQ(first, "1,1,0,0,3,3");
}

TEST(Report, RendersPlotsAndTablesFromARunDirectory) {
  MetricsCollector c(kTimeZero, seconds(60));
  for (int i = 0; i < 3; ++i) {
    trace::Record n = rec(0, trace::NODE_ADDED);
    n.set_node("n" + std::to_string(i));
    c.add(n);
  }
  for (int i = 0; i < 600; ++i) {
    trace::Record r = rec(i * 6.0, trace::REQUEST_SERVED);
    r.set_service("default/web");
    r.set_latency_ns(1'000'000 + i * 1000);
    c.add(r);
  }
  c.finish(time_from_nanos(3600'000'000'000));
  std::string dir = temp_path("report");
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(write_time_series_csv(c, dir).is_ok());
  nlohmann::ordered_json summary = metrics_to_json(c.metrics());
  summary["scenario"] = "unit <test>";
  summary["assertions"] = {{{"name", "availability >= 0.999"}, {"passed", false}, {"value", 0.5}}};
  std::ofstream(dir + "/summary.json") << summary.dump(2);
  auto result = write_report(dir);
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  EXPECT_GE(result->plots, 3) << result->warning;
  std::ifstream f(result->html_path);
  std::stringstream html;
  html << f.rdbuf();
  EXPECT_NE(html.str().find("unit &lt;test&gt;"), std::string::npos);
  EXPECT_NE(html.str().find("FAILED"), std::string::npos);
  EXPECT_NE(html.str().find("plots/requests.svg"), std::string::npos);
  std::ifstream svg(dir + "/plots/requests.svg");
  std::stringstream svg_text;
  svg_text << svg.rdbuf();
  EXPECT_NE(svg_text.str().find("<svg"), std::string::npos);
}

TEST(Report, MissingSummaryIsAClearError) {
  auto result = write_report(temp_path("nonexistent-dir"));
  ASSERT_FALSE(result.is_ok());
  EXPECT_NE(result.status().message().find("summary.json"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::analysis
