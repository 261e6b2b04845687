// The `flotilla` binary: thin subcommands over the libraries. Each subcommand
// lives in its own file and registers itself here (see cli/command.h).
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "cli/command.h"
#include "cli/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"Flotilla: a cluster manager in the Kubernetes mould, simulated and live."};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", "flotilla 0.1.0");
  int exit_code = 0;
  flotilla::cli::add_validate_command(app, &exit_code);
  flotilla::cli::add_serve_commands(app, &exit_code);
  flotilla::cli::add_sim_commands(app, &exit_code);
  flotilla::cli::add_analyze_command(app, &exit_code);
  flotilla::cli::add_live_commands(app, &exit_code);
  flotilla::cli::add_replay_command(app, &exit_code);
  flotilla::cli::add_agent_command(app, &exit_code);
  try {
    CLI11_PARSE(app, argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "flotilla: internal error: " << e.what() << "\n";
    return 2;
  }
  if (argc == 1) std::cout << app.help();
  return exit_code;
}
