#!/usr/bin/env bash
# The main job of `make run`: the default scenario in the simulator, with its
# summary and report. Until the simulator can run scenarios it shows the CLI.
set -euo pipefail
bin="$1"; scenario="$2"
if "$bin" sim --help >/dev/null 2>&1 && [ -f "$scenario" ]; then
  exec "$bin" sim "$scenario"
fi
exec "$bin" --help
