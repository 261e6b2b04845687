#!/usr/bin/env bash
# Several "hosts" on this machine for the multi-host tests and benchmarks
# (docs/multihost.md): each host is a network namespace flmh-hN with a veth
# into the bridge flmh-seg in the root namespace (the "physical segment",
# 10.99.0.0/24; the root namespace is 10.99.0.1, where the control plane
# listens; host N is 10.99.0.(10+N)), and its own dockerd (own data root, exec
# root, pidfile, socket, managed containerd) with Flotilla's images loaded.
#   multihost-env.sh up N      pre-cleans, then makes hosts 1..N
#   multihost-env.sh down      removes every flmh-* namespace, daemon, link, dir
#   multihost-env.sh stop-host N   kills host N's processes (dockerd, containerd, pods)
#   multihost-env.sh partition N | heal N   cuts / restores host N's link to the segment
# Needs root. State in $FLMH_DIR (default /tmp/flmh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
DIR="${FLMH_DIR:-/tmp/flmh}"
SEG=flmh-seg
SEG_IP=10.99.0.1

log() { echo "multihost-env: $*" >&2; }

host_ip() { echo "10.99.0.$((10 + $1))"; }

# Every process whose network namespace is flmh-hN, killed (dockerd first, so
# it does not restart containerd), then the namespace removed.
kill_host() {
  local ns=flmh-h$1 pids
  [ -e "/var/run/netns/$ns" ] || return 0
  local pid
  pid=$(cat "$DIR/h$1/docker.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  for _ in 1 2 3; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.3
  done
}

down() {
  local ns n
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^flmh-' || true); do
    n=${ns#flmh-h}
    kill_host "$n"
    ip netns del "$ns" 2>/dev/null || true
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^flmh-' || true); do
    ip link del "$l" 2>/dev/null || true
  done
  if [ -d "$DIR" ]; then
    # Mounts made by a daemon live in its namespace and die with it; any left
    # in ours (a daemon started without ip netns exec) are unmounted first.
    { grep " $DIR/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$DIR"
  fi
}

# Shell commands that mount, under a fresh /sys, the cgroup filesystems the
# root namespace has (v1 controllers and/or the v2 hierarchy).
cgroup_mounts() {
  local out="mount -t tmpfs cgroup-root /sys/fs/cgroup;" dev mnt type opts rest
  while read -r dev mnt type opts rest; do
    case "$type" in
      cgroup) out+=" mkdir -p '$mnt' && mount -t cgroup -o '${opts#rw,relatime,}' cgroup '$mnt';" ;;
      cgroup2) out+=" mkdir -p '$mnt' && mount -t cgroup2 cgroup2 '$mnt';" ;;
    esac
  done < <(grep -E ' /sys/fs/cgroup(/| )' /proc/mounts | grep -vw tmpfs)
  if ! grep -q ' /sys/fs/cgroup tmpfs' /proc/mounts; then
    out="mount -t cgroup2 cgroup2 /sys/fs/cgroup;"
  fi
  echo "$out"
}

wait_for_socket() {
  local sock=$1 log=$2
  for _ in $(seq 1 150); do
    if curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "dockerd on $sock did not answer; last lines of $log:"
  tail -n 20 "$log" >&2
  return 1
}

up() {
  local n=$1 i ns ip first
  down
  mkdir -p "$DIR"
  ip link add "$SEG" type bridge
  ip addr add "$SEG_IP/24" dev "$SEG"
  ip link set "$SEG" up
  # Forwarding between the hosts' veths is the segment's business, not the
  # root namespace's firewall (Docker on the host may set FORWARD to DROP).
  iptables -w -C FORWARD -i "$SEG" -o "$SEG" -j ACCEPT 2>/dev/null ||
    iptables -w -I FORWARD -i "$SEG" -o "$SEG" -j ACCEPT
  for i in $(seq 1 "$n"); do
    ns=flmh-h$i
    ip=$(host_ip "$i")
    ip netns add "$ns"
    ip link add "flmh-h$i" type veth peer name eth0 netns "$ns"
    ip link set "flmh-h$i" master "$SEG" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$SEG_IP"
    mkdir -p "$DIR/h$i"
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    # ip netns exec mounts a fresh /sys (for the namespace's devices), which
    # hides the cgroup mounts dockerd needs: they are mounted again first.
    ip netns exec "$ns" setsid sh -c "$(cgroup_mounts) exec dockerd \"\$@\"" dockerd \
      --data-root "$DIR/h$i/data" --exec-root "$DIR/h$i/exec" --pidfile "$DIR/h$i/docker.pid" \
      -H "unix://$DIR/h$i/docker.sock" --bridge=none --storage-driver=overlay2 \
      >"$DIR/h$i/dockerd.log" 2>&1 </dev/null &
  done
  for i in $(seq 1 "$n"); do
    wait_for_socket "$DIR/h$i/docker.sock" "$DIR/h$i/dockerd.log"
  done
  # Images: built into host 1 (build-images.sh talks to /var/run/docker.sock,
  # so it runs where that path is host 1's socket) and saved, then loaded into
  # the others. The saved tar is kept under build/ for the next run, keyed by
  # the images' inputs.
  local key cache
  key=$(cat "$HERE/build-images.sh" "$ROOT"/images/*/* 2>/dev/null | sha256sum | cut -c1-16)
  cache="${FLOTILLA_IMAGE_WORK:-$ROOT/build/images}/flmh-images-$key.tar"
  if [ ! -s "$cache" ]; then
    mkdir -p "$(dirname "$cache")"
    unshare -m --propagation private sh -c "
      mount -t tmpfs flmh-run /run &&
      ln -s '$DIR/h1/docker.sock' /run/docker.sock &&
      '$HERE/build-images.sh'" >"$DIR/images.log" 2>&1 || {
      log "building images failed:"
      tail -n 20 "$DIR/images.log" >&2
      return 1
    }
    rm -f "${cache%/*}"/flmh-images-*.tar
    docker -H "unix://$DIR/h1/docker.sock" save -o "$cache.tmp" \
      flotilla/pause flotilla/base flotilla/demo-server
    mv "$cache.tmp" "$cache"
    first=2
  else
    first=1
  fi
  for i in $(seq "$first" "$n"); do
    docker -H "unix://$DIR/h$i/docker.sock" load -q -i "$cache" >/dev/null
  done
  log "$n hosts up (segment $SEG $SEG_IP/24; sockets $DIR/hN/docker.sock)"
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  down) down ;;
  stop-host) kill_host "$2" ;;
  partition) ip link set "flmh-h$2" down ;;
  heal) ip link set "flmh-h$2" up ;;
  *) echo "usage: $0 up N | down | stop-host N | partition N | heal N" >&2; exit 2 ;;
esac
