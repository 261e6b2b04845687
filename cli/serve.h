// `flotilla serve`: the object store behind the Kubernetes-compatible API
// (backends/apiserver) until SIGINT/SIGTERM; `flotilla kubeconfig`: a
// kubeconfig that points kubectl at it.
#pragma once

#include <CLI/CLI.hpp>

#include <ostream>
#include <string>

namespace flotilla::cli {

// Registers `flotilla serve` and `flotilla kubeconfig`; *exit_code is set
// when one of them runs.
void add_serve_commands(CLI::App& app, int* exit_code);

// The kubeconfig text for a server at `server_url` ("http://127.0.0.1:6443"),
// with a bearer token when `token` is non-empty. Context and cluster are both
// named "flotilla".
std::string kubeconfig_text(const std::string& server_url, const std::string& token);

}  // namespace flotilla::cli
