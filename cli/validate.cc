#include "cli/validate.h"

#include <yaml-cpp/yaml.h>

#include "scenarios/loader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "core/api/codec.h"
#include "core/api/validation.h"

namespace flotilla::cli {
namespace {

// Reads a whole file; false with a reason when it cannot.
bool read_file(const std::string& path, std::string* text, std::string* why) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    *why = "is a directory";
    return false;
  }
  if (!std::filesystem::exists(path, ec)) {
    *why = "no such file or directory";
    return false;
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *why = errno != 0 ? std::strerror(errno) : "cannot open";
    return false;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    *why = "read error";
    return false;
  }
  *text = buf.str();
  return true;
}

// Returns true when the file is clean.
// A scenario is a single YAML mapping with a `duration` or `cluster` and no
// `kind`; anything else is read as manifests.
bool looks_like_scenario(const std::string& text) {
  try {
    YAML::Node root = YAML::Load(text);
    return root.IsMap() && !root["kind"] && (root["duration"] || root["cluster"]);
  } catch (const YAML::Exception&) {
    return false;  // the manifest decoder reports the syntax error with its position
  }
}

bool validate_file(const std::string& path, std::ostream& out, std::ostream& err) {
  std::string text, why;
  if (!read_file(path, &text, &why)) {
    err << path << ": " << why << "\n";
    return false;
  }
  if (looks_like_scenario(text)) {
    auto scenario = scenarios::load_scenario(path);
    if (!scenario.is_ok()) {
      err << scenario.status().message() << "\n";
      return false;
    }
    for (const std::string& w : scenario->warnings) err << w << "\n";
    size_t objects = 0;
    for (const auto& step : scenario->workload) objects += step.apply.size();
    out << path << ": scenario " << scenario->name << " valid (" << scenario->total_nodes()
        << " nodes, " << objects << " objects, " << scenario->traffic.size() << " traffic, "
        << scenario->faults.size() << " faults, " << scenario->assertions.size()
        << " assertions)\n";
    return true;
  }
  auto decoded = api::decode_manifests(text, path);
  if (!decoded.is_ok()) {
    err << decoded.status().message() << "\n";
    return false;
  }
  bool ok = true;
  for (const api::DecodedObject& o : *decoded) {
    std::string label = api::object_label(*o.object);
    for (const api::DecodeWarning& w : o.warnings) {
      err << path << ":" << (w.line > 0 ? w.line : o.line) << ": warning: " << label << ": "
          << w.to_string() << "\n";
    }
    for (const api::FieldError& e : api::validate(*o.object)) {
      err << path << ": " << label << ": " << e.to_string() << "\n";
      ok = false;
    }
  }
  if (ok) {
    size_t n = decoded->size();
    out << path << ": " << n << (n == 1 ? " object" : " objects") << " valid\n";
  }
  return ok;
}

}  // namespace

int run_validate(const std::vector<std::string>& files, std::ostream& out, std::ostream& err) {
  bool ok = true;
  for (const std::string& f : files) {
    try {
      if (!validate_file(f, out, err)) ok = false;
    } catch (const std::exception& e) {
      err << f << ": internal error: " << e.what() << "\n";
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

void add_validate_command(CLI::App& app, int* exit_code) {
  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand(
      "validate", "Check Kubernetes manifests (YAML or JSON) or scenario files");
  cmd->add_option("files", *files, "Manifest files (multi-document YAML, JSON, kind: List)")
      ->required();
  cmd->callback([files, exit_code] { *exit_code = run_validate(*files, std::cout, std::cerr); });
}

}  // namespace flotilla::cli
