#!/usr/bin/env bash
# bench-proxy-failures.sh: the Service proxy under failures, live on Docker,
# longer than the test does it. Runs tests/backends/live/proxy_failures_test
# (an RC of 3 demo-server pods behind a Service, wrk from the host through the
# TcpServiceProxy) with:
#   kill   one backend container SIGKILLed every 5 s, wrk with Connection: close
#   drain  the RC scaled 3 -> 2 -> 3 again and again, wrk with keep-alive
# and prints per experiment: requests, failed (socket errors + non-2xx), the
# failed rate, the request rate achieved and p50/p99 latency.
#
#   scripts/bench-proxy-failures.sh                  # 120 s each, 8 connections, 40 ms pacing
#   SECONDS_KILL=300 SECONDS_DRAIN=300 CONNS=16 DELAY_MS=20 scripts/bench-proxy-failures.sh
#   KILL_MODE=keepalive ...     # the kill experiment over keep-alive connections
#   SHUTDOWN_DELAY_MS=0 ...     # the demo server stops accepting at once on SIGTERM
#   EXPERIMENTS="kill" ...      # only one of them
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/proxy-rel}"
SECONDS_KILL="${SECONDS_KILL:-120}"
SECONDS_DRAIN="${SECONDS_DRAIN:-120}"
CONNS="${CONNS:-8}"
DELAY_MS="${DELAY_MS:-40}"
KILL_MODE="${KILL_MODE:-close}"
DRAIN_MODE="${DRAIN_MODE:-keepalive}"
SHUTDOWN_DELAY_MS="${SHUTDOWN_DELAY_MS:-1000}"
EXPERIMENTS="${EXPERIMENTS:-kill drain}"

command -v wrk >/dev/null 2>&1 || {
  echo "installing wrk (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null
}
"$ROOT/scripts/ensure-docker.sh" >&2

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  # -O2 as in the release preset (GCC 12's -O3 raises a false -Wrestrict elsewhere).
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
fi
cmake --build "$BUILD_DIR" --target proxy_failures_test >/dev/null
TEST_BIN="$BUILD_DIR/tests/backends/live/proxy_failures_test"

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: 2 threads, $CONNS connections, ${DELAY_MS} ms delay per request per connection;" \
     "3 demo-server pods, SHUTDOWN_DELAY_MS=$SHUTDOWN_DELAY_MS"
status=0
for exp in $EXPERIMENTS; do
  case $exp in
    kill) filter='ProxyFailures.KillingABackendEvery5sFailsUnderOnePerMille' ;;
    drain) filter='ProxyFailures.ScaleDownDrainsConnectionsWithoutAFailedRequest' ;;
    *) echo "unknown experiment $exp (kill, drain)" >&2; exit 2 ;;
  esac
  out="$(mktemp /tmp/flotilla-bench-proxyfail.XXXXXX)"
  set +e
  FLOTILLA_SOURCE_DIR="$ROOT" FLOTILLA_PF_KILL_SECONDS="$SECONDS_KILL" \
    FLOTILLA_PF_DRAIN_SECONDS="$SECONDS_DRAIN" FLOTILLA_PF_CONNECTIONS="$CONNS" \
    FLOTILLA_PF_DELAY_MS="$DELAY_MS" FLOTILLA_PF_KILL_MODE="$KILL_MODE" \
    FLOTILLA_PF_DRAIN_MODE="$DRAIN_MODE" FLOTILLA_PF_SHUTDOWN_DELAY_MS="$SHUTDOWN_DELAY_MS" \
    "$TEST_BIN" --gtest_filter="$filter" >"$out" 2>&1
  rc=$?
  set -e
  echo
  echo "== $exp =="
  if ! grep '^PROXYFAIL' "$out"; then
    echo "no figures; the test said:" >&2
    tail -n 30 "$out" >&2
  fi
  if ((rc != 0)); then
    echo "threshold missed (test exit $rc):"
    grep -E 'Failure|Expected|Which is|failed_rate' "$out" | head -n 10 || true
    status=1
  else
    echo "threshold met"
  fi
  rm -f "$out"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
