// How a subcommand plugs into the `flotilla` binary: each lives in its own
// file, registers itself on the CLI11 app and, when it runs, stores the process
// exit code. main.cc lists the registration functions and nothing else.
#pragma once

#include <CLI/CLI.hpp>

namespace flotilla::cli {

// Registers `flotilla validate FILE...`. When the subcommand runs, *exit_code
// is set (0: every object valid; 1: any problem).
void add_validate_command(CLI::App& app, int* exit_code);

// Registers `flotilla sim`, `flotilla report` and `flotilla trace`. Exit
// codes: 0 success, 2 bad input, 3 an assertion failed.
void add_sim_commands(CLI::App& app, int* exit_code);

// Registers `flotilla live SCENARIO` (exit codes as for sim) and `flotilla
// live down` (removes every container, volume and network Flotilla made).
void add_live_commands(CLI::App& app, int* exit_code);

// Registers `flotilla replay TRACE --format ...` (cli/replay.cc). Exit codes:
// 0 success, 2 bad input.
void add_replay_command(CLI::App& app, int* exit_code);

// Registers `flotilla analyze DIR` (measured vs predicted).
void add_analyze_command(CLI::App& app, int* exit_code);

// Registers `flotilla agent --server URL --node-name NAME` (cli/agent.cc): a
// node agent on this host's Docker joined to a remote control plane. Exit
// codes: 0 stopped by a signal, 1 an error, 2 bad input.
void add_agent_command(CLI::App& app, int* exit_code);

}  // namespace flotilla::cli
