// The `flotilla` binary: thin subcommands over the libraries.
#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"Flotilla: a cluster manager in the Kubernetes mould, simulated and live."};
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", "flotilla 0.1.0");
  CLI11_PARSE(app, argc, argv);
  if (argc == 1) std::cout << app.help();
  return 0;
}
