#!/usr/bin/env bash
# Makes a Docker engine answer on /var/run/docker.sock for Flotilla's live mode
# and live tests: installs Debian's docker.io when dockerd is missing, starts
# dockerd when the socket does not answer, waits for GET /_ping with a
# deadline, and builds Flotilla's images when they are absent.
# FLOTILLA_SKIP_DOCKER=1 skips everything (live tests then skip and say so).
set -euo pipefail

SOCK=/var/run/docker.sock
DEADLINE_S=${FLOTILLA_DOCKER_DEADLINE_S:-60}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
LOG_DIR=${FLOTILLA_DOCKER_LOG_DIR:-/tmp}
LOG="$LOG_DIR/flotilla-dockerd.log"

if [ "${FLOTILLA_SKIP_DOCKER:-0}" = "1" ]; then
  echo "ensure-docker: FLOTILLA_SKIP_DOCKER=1, not touching Docker (live tests will skip)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

ping_ok() {
  [ -S "$SOCK" ] && curl -fsS --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
}

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || need_pkgs+=(busybox-static)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "ensure-docker: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# A live (not zombie) dockerd process exists.
dockerd_alive() {
  ps -C dockerd -o stat= 2>/dev/null | grep -qv '^Z'
}

start_dockerd() {
  # A daemon killed hard leaves its containerd behind (and a stale pid file and
  # socket), which makes the next daemon time out; end that orphan by its pid.
  local p
  for p in $(pgrep -f '/var/run/docker/containerd/containerd.toml' 2>/dev/null || true); do
    echo "ensure-docker: ending containerd $p left by a dead dockerd"
    $SUDO kill "$p" 2>/dev/null || true
  done
  $SUDO rm -f /var/run/docker.pid "$SOCK" /var/run/docker/containerd/containerd.pid
  echo "ensure-docker: starting dockerd (log: $LOG)"
  mkdir -p "$LOG_DIR"
  $SUDO sh -c "nohup setsid dockerd >>'$LOG' 2>&1 </dev/null &"
}

if ! ping_ok; then
  started=0
  end=$(( $(date +%s) + DEADLINE_S ))
  until ping_ok; do
    # Start one when none runs (also when a daemon that was still dying when
    # we looked has gone since); up to 3 attempts.
    if [ "$started" -lt 3 ] && ! dockerd_alive; then
      start_dockerd
      started=$((started + 1))
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "ensure-docker: dockerd did not answer on $SOCK within ${DEADLINE_S}s; last lines of $LOG:" >&2
      tail -n 30 "$LOG" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "ensure-docker: dockerd answers on $SOCK"
fi

bash "$ROOT/scripts/build-images.sh"
