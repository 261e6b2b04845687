#!/usr/bin/env bash
# bench-proxy.sh: the live TCP service proxy vs HAProxy in TCP mode, side by
# side on loopback, in front of the same backends, under the same wrk load.
# Installs Debian's haproxy and wrk when missing. Prints requests/s and latency
# percentiles of each run, then medians and the Flotilla/HAProxy ratio.
#
#   scripts/bench-proxy.sh            # 3 runs x 10 s, 2 wrk threads, 50 connections
#   RUNS=5 DURATION=20s CONNS=100 HAPROXY_THREADS=2 scripts/bench-proxy.sh
#   MODES="keepalive close" ...       # close: one new connection per request
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build/tcpproxy-rel}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-50}"
BACKENDS="${BACKENDS:-3}"
HAPROXY_THREADS="${HAPROXY_THREADS:-1}"  # the Flotilla proxy is one loop thread
MODES="${MODES:-keepalive close}"
FLOTILLA_PORT="${FLOTILLA_PORT:-18080}"
HAPROXY_PORT="${HAPROXY_PORT:-18081}"
BACKEND_BASE_PORT="${BACKEND_BASE_PORT:-19101}"

need() {
  local missing=()
  for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} (Debian packages)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
need haproxy wrk

if [[ ! -x "$BUILD_DIR/tests/bench/proxy_live/proxy_live_driver" ]]; then
  # -O2 as in the release preset (GCC 12's -O3 raises a false -Wrestrict elsewhere).
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" >/dev/null
fi
cmake --build "$BUILD_DIR" --target proxy_live_driver >/dev/null
DRIVER="$BUILD_DIR/tests/bench/proxy_live/proxy_live_driver"

WORK="$(mktemp -d /tmp/flotilla-bench-proxy.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {  # wait (deadline 10 s) until 127.0.0.1:$1 accepts
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1; logs:" >&2
  tail -n 20 "$WORK"/*.log >&2
  exit 1
}

backend_args=()
haproxy_servers=""
for i in $(seq 1 "$BACKENDS"); do
  port=$((BACKEND_BASE_PORT + i - 1))
  "$DRIVER" --respond "127.0.0.1:$port" --name "backend-$i" >"$WORK/backend-$i.log" 2>&1 &
  PIDS+=($!)
  backend_args+=(--backend "127.0.0.1:$port")
  haproxy_servers+="  server b$i 127.0.0.1:$port check inter 2s"$'\n'
done
for i in $(seq 1 "$BACKENDS"); do wait_port $((BACKEND_BASE_PORT + i - 1)); done

"$DRIVER" --listen "127.0.0.1:$FLOTILLA_PORT" "${backend_args[@]}" >"$WORK/flotilla.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/haproxy.cfg" <<CFG
global
  nbthread $HAPROXY_THREADS
  maxconn 4096
defaults
  mode tcp
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 2
  option redispatch
frontend bench
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend servers
backend servers
  balance roundrobin
$haproxy_servers
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port "$FLOTILLA_PORT"
wait_port "$HAPROXY_PORT"

# One wrk run; prints "rps p50_ms p90_ms p99_ms".
run_wrk() {
  local port=$1 mode=$2 extra=()
  [[ $mode == close ]] && extra=(-H "Connection: close")
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${extra[@]}" "http://127.0.0.1:$port/" \
    >"$WORK/wrk.out" 2>&1
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) } /^ +90%/ { p90 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Non-2xx|Socket errors/ { err = err " " $0 }
    END { printf "%s %.3f %.3f %.3f\n", rps, p50, p90, p99; if (err != "") print "  (wrk:" err ")" > "/dev/stderr" }
  ' "$WORK/wrk.out"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: $THREADS threads, $CONNS connections, $DURATION per run, $RUNS runs per proxy and mode;" \
     "$BACKENDS backends; haproxy $(haproxy -v | head -1 | awk '{print $3}') nbthread $HAPROXY_THREADS"
for mode in $MODES; do
  : >"$WORK/flotilla.$mode" ; : >"$WORK/haproxy.$mode"
  echo
  echo "== mode $mode =="
  printf '%-9s %-4s %12s %9s %9s %9s\n' proxy run req/s p50_ms p90_ms p99_ms
  for run in $(seq 1 "$RUNS"); do
    # Alternate which proxy goes first so drift in machine load hits both.
    if ((run % 2)); then order="flotilla haproxy"; else order="haproxy flotilla"; fi
    for p in $order; do
      port=$FLOTILLA_PORT
      [[ $p == haproxy ]] && port=$HAPROXY_PORT
      line=$(run_wrk "$port" "$mode")
      echo "$line" >>"$WORK/$p.$mode"
      # shellcheck disable=SC2086
      printf '%-9s %-4s %12s %9s %9s %9s\n' "$p" "$run" $line
    done
  done
  for p in flotilla haproxy; do
    for col in 1 2 3 4; do
      eval "${p}_c$col=$(cut -d' ' -f$col "$WORK/$p.$mode" | median)"
    done
  done
  printf '%-9s %-4s %12s %9s %9s %9s\n' flotilla med "$flotilla_c1" "$flotilla_c2" "$flotilla_c3" "$flotilla_c4"
  printf '%-9s %-4s %12s %9s %9s %9s\n' haproxy med "$haproxy_c1" "$haproxy_c2" "$haproxy_c3" "$haproxy_c4"
  awk -v f="$flotilla_c1" -v h="$haproxy_c1" -v fl="$flotilla_c2" -v hl="$haproxy_c2" \
    'BEGIN { printf "ratio (flotilla/haproxy) requests/s: %.3f   p50 latency: %+.3f ms\n", f / h, fl - hl }'
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
