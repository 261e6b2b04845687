// The HTML report of a run: plots made with gnuplot (SVG) from the run's CSV
// time series, plus the summary's numbers as tables. `flotilla report DIR` and
// the end of every `flotilla sim` run call it.
#pragma once

#include <string>

#include "core/util/status.h"

namespace flotilla::analysis {

struct ReportResult {
  std::string html_path;
  int plots = 0;          // plots rendered
  std::string warning;    // e.g. gnuplot missing: the report has tables only
};

// Reads DIR/summary.json and DIR/*.csv, writes DIR/plots/*.gp and *.svg and
// DIR/report.html. Errors name the missing or malformed input file.
StatusOr<ReportResult> write_report(const std::string& dir);

}  // namespace flotilla::analysis
