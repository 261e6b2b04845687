#!/usr/bin/env bash
# Builds Flotilla's local images without any registry: a rootfs tar made from
# Debian's busybox-static and our own static binaries, loaded with
# `docker import`. Idempotent: an image is rebuilt only when it is missing or
# its inputs changed (the input hash is kept in the label flotilla.io/build).
#   flotilla/pause        a static pause binary, the pod sandbox
#   flotilla/base         busybox: sh, httpd (CMD: httpd on port 80 serving /www), wget, nc...
#   flotilla/demo-server  base + /demo-server (HTTP on $PORT, default 8080; answers its pod name)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
IMAGES="$ROOT/images"
SOCK=/var/run/docker.sock
BUSYBOX=/bin/busybox
WORK="${FLOTILLA_IMAGE_WORK:-$ROOT/build/images}"

if [ ! -x "$BUSYBOX" ] || ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "build-images: $BUSYBOX missing; install it with: apt-get install busybox-static" >&2
  exit 1
fi
if ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' && ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "build-images: $BUSYBOX is not static; install busybox-static" >&2
  exit 1
fi

api() {  # api METHOD PATH [curl args...]
  local method=$1 path=$2
  shift 2
  curl -fsS --unix-socket "$SOCK" -X "$method" "$@" "http://localhost$path"
}

# Prints the flotilla.io/build label of an image, or nothing when absent.
current_build() {
  api GET "/images/$1/json" 2>/dev/null |
    sed -n 's/.*"flotilla.io\/build":"\([0-9a-f]*\)".*/\1/p' | head -n1
}

urlencode() {
  local s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      [a-zA-Z0-9.~_-]) out+="$c" ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# import NAME TAR HASH CHANGE... : loads TAR as NAME:latest with Dockerfile-style changes.
import() {
  local name=$1 tar=$2 hash=$3
  shift 3
  local q="fromSrc=-&repo=$(urlencode "$name")&tag=latest"
  q+="&changes=$(urlencode "LABEL flotilla.io/build=$hash")"
  local c
  for c in "$@"; do q+="&changes=$(urlencode "$c")"; done
  local out
  out=$(api POST "/images/create?$q" -H 'Content-Type: application/x-tar' --data-binary "@$tar")
  if echo "$out" | grep -q '"error"'; then
    echo "build-images: importing $name failed: $out" >&2
    exit 1
  fi
  echo "build-images: built $name:latest"
}

mkdir -p "$WORK"
# The banner's first line. Read with sed, which reads to the end: `head -n1`
# closes the pipe early, busybox then dies of SIGPIPE in ~1-2% of runs, and
# with pipefail and set -e this script ended there without a word.
bb_version=$("$BUSYBOX" 2>&1 | sed -n 1p)

# A busybox rootfs under $1: every applet linked, a minimal /etc, /tmp, /www.
make_busybox_root() {
  local r=$1
  rm -rf "$r"
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/www" "$r/root" "$r/proc" "$r/sys" "$r/dev" "$r/var/log"
  chmod 1777 "$r/tmp"
  cp "$BUSYBOX" "$r/bin/busybox"
  local a
  for a in $("$BUSYBOX" --list); do
    [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
  done
  mkdir -p "$r/usr/bin" "$r/sbin" "$r/usr/sbin"
  ln -sf /bin/env "$r/usr/bin/env"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
  printf '<html><body><h1>flotilla/base</h1></body></html>\n' >"$r/www/index.html"
}

hash_of() { cat "$@" | { cat; echo "$bb_version"; } | sha256sum | cut -c1-16; }

# --- flotilla/pause ---
h=$(hash_of "$IMAGES/pause/pause.cc" "$HERE/build-images.sh")
if [ "$(current_build flotilla/pause)" != "$h" ]; then
  r="$WORK/pause-root"
  rm -rf "$r" && mkdir -p "$r"
  g++ -std=c++20 -static -Os -Wall -Wextra -Werror "$IMAGES/pause/pause.cc" -o "$r/pause"
  strip "$r/pause"
  tar -C "$r" -cf "$WORK/pause.tar" .
  import flotilla/pause "$WORK/pause.tar" "$h" 'ENTRYPOINT ["/pause"]'
fi

# --- flotilla/base ---
h=$(hash_of "$HERE/build-images.sh")
if [ "$(current_build flotilla/base)" != "$h" ]; then
  r="$WORK/base-root"
  make_busybox_root "$r"
  tar -C "$r" -cf "$WORK/base.tar" .
  import flotilla/base "$WORK/base.tar" "$h" 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    'EXPOSE 80' 'CMD ["httpd", "-f", "-v", "-p", "80", "-h", "/www"]'
fi

# --- flotilla/demo-server ---
h=$(hash_of "$IMAGES/demo-server/main.cc" "$HERE/build-images.sh")
if [ "$(current_build flotilla/demo-server)" != "$h" ]; then
  r="$WORK/demo-root"
  make_busybox_root "$r"
  g++ -std=c++20 -static -O2 -pthread -Wall -Wextra -Werror "$IMAGES/demo-server/main.cc" \
    -o "$r/demo-server"
  strip "$r/demo-server"
  tar -C "$r" -cf "$WORK/demo-server.tar" .
  import flotilla/demo-server "$WORK/demo-server.tar" "$h" 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    'ENV PORT=8080' 'EXPOSE 8080' 'ENTRYPOINT ["/demo-server"]'
fi
