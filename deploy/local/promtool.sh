#!/usr/bin/env bash
# Print the path of a working promtool (Prometheus' rule and config checker), getting it once.
#
#   p=$(bash deploy/local/promtool.sh) && "$p" check rules deploy/prometheus/alerts.yml
#
# Order: $PROMTOOL if set; a promtool on PATH; the cached copy; else Debian's `prometheus`
# package (bookworm: 2.42), downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
# into $PROMTOOL_CACHE (default .data/tools/prometheus, git-ignored). The package is never
# installed: its maintainer scripts would add a user and a service, and its dependencies are
# the web UI's JavaScript. promtool itself is one Go binary needing only libc.
# `apt-get update` runs only when the first download fails (fresh machine without package
# lists), and only as root. No Docker. Messages go to stderr; stdout is the path alone.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${PROMTOOL_CACHE:-$ROOT/.data/tools/prometheus}
CACHED=$CACHE/usr/bin/promtool

works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

for candidate in "${PROMTOOL:-}" "$(command -v promtool || true)" "$CACHED"; do
  if works "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "promtool.sh: no promtool (PATH, \$PROMTOOL) and no apt-get/dpkg-deb to get one" >&2
  exit 1
}

mkdir -p "$(dirname "$CACHE")"
# Work in a private directory next to the cache and move the result in at the end, so a run
# killed half-way, or two runs at once, never leave a half-unpacked cache behind.
WORK=$(mktemp -d "$CACHE.tmp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# As root, apt fetches as the unprivileged _apt user when that user may write the directory.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$WORK"; fi

download() { (cd "$WORK" && apt-get download -qq prometheus) >&2; }

echo "promtool.sh: fetching Debian's prometheus package for promtool (one time)" >&2
if ! download; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "promtool.sh: apt-get download failed; run \`sudo apt-get update\` and retry" >&2
    exit 1
  fi
  echo "promtool.sh: download failed; running apt-get update once" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  download
fi

deb=$(find "$WORK" -maxdepth 1 -name 'prometheus_*.deb' | head -n 1)
[ -n "$deb" ] || { echo "promtool.sh: apt-get download left no .deb in $WORK" >&2; exit 1; }
mkdir "$WORK/root"
dpkg-deb -x "$deb" "$WORK/root"
works "$WORK/root/usr/bin/promtool" || {
  echo "promtool.sh: $deb holds no working usr/bin/promtool" >&2
  exit 1
}
# Keep only the binary (the package is 96 MB unpacked, mostly the server and its web UI).
mkdir -p "$WORK/keep/usr/bin"
mv "$WORK/root/usr/bin/promtool" "$WORK/keep/usr/bin/promtool"
basename "$deb" >"$WORK/keep/SOURCE"
# A broken cache (a file gone missing) is replaced; a working one that a concurrent run
# moved in meanwhile wins, and ours is dropped.
if [ -e "$CACHE" ] && ! works "$CACHED"; then rm -rf "$CACHE"; fi
mv -T "$WORK/keep" "$CACHE" 2>/dev/null || true
works "$CACHED" || { echo "promtool.sh: $CACHED does not run" >&2; exit 1; }
echo "$CACHED"
