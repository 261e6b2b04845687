#!/usr/bin/env bash
# Pod-to-pod latency (TCP echo round trips of 64 bytes, TCP_NODELAY) and
# throughput (1 GiB bulk transfer) on one host and across two hosts, in both
# pod network modes, on the multi-host harness (scripts/multihost-env.sh; root
# and Docker). Runs the measurement case of multihost_test from BUILD (default
# build/live) and prints one BENCH line per mode and path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${1:-$ROOT/build/live}"
"$BUILD/tests/backends/multihost/multihost_test" --gtest_also_run_disabled_tests \
  --gtest_filter='*MeasurePodToPodLatencyAndThroughput*' | grep -E '^BENCH|FAILED|Failure' || true
"$ROOT/scripts/multihost-env.sh" down
