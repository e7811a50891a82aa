#!/usr/bin/env bash
# build-flashmq.sh: builds FlashMQ from a source tree you provide, for
# scripts/compare.sh, into a cache directory outside this repository.
#
# Usage: scripts/build-flashmq.sh [--cache DIR] SRC_DIR
#   SRC_DIR      a FlashMQ source tree (a checkout or unpacked release of
#                github.com/halfgaar/FlashMQ; compare.sh's figures use
#                tag v1.26.2). It is only read: the build goes elsewhere.
#   --cache DIR  where compare.sh looks for peers (default: $MQTTD_PEERS_CACHE,
#                else ${XDG_CACHE_HOME:-~/.cache}/mqttd-compare). The binary
#                lands in DIR/flashmq/flashmq, the build tree in
#                DIR/flashmq/build (reused when it was built from
#                the same SRC_DIR, so a rebuild compiles only what changed).
#
# This script never fetches FlashMQ itself (CI reaches only the Debian, npm
# and Go proxies). It installs what the build needs when missing, with
# Debian's apt-get (root or password-less sudo): cmake, g++, make and
# libssl-dev. The build is CMake's Release type, as FlashMQ's own build.sh
# uses; the man pages and the Debian package are not built.
set -euo pipefail

die() { echo "build-flashmq: $*" >&2; exit 2; }
log() { echo "build-flashmq: $*" >&2; }

CACHE=${MQTTD_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqttd-compare}
SRC=""
while [ $# -gt 0 ]; do
	case "$1" in
	--cache) CACHE=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) [ -z "$SRC" ] || die "one SRC_DIR only"; SRC=$1; shift ;;
	esac
done
[ -n "$SRC" ] || die "usage: scripts/build-flashmq.sh [--cache DIR] SRC_DIR (see --help)"
grep -qs 'project(FlashMQ' "$SRC/CMakeLists.txt" ||
	die "$SRC does not look like a FlashMQ source tree (no CMakeLists.txt with project(FlashMQ ...))"
SRC=$(cd "$SRC" && pwd)

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

# Debian package names of what the build runs or links against.
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} with apt-get"
	{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } ||
		die "could not install ${missing[*]} (root or password-less sudo needed)"
fi

DEST="$CACHE/flashmq"
BUILD="$DEST/build"
mkdir -p "$DEST"
# A build tree configured from the same source tree is reused (make then
# rebuilds only what changed); one from another tree is started afresh, as
# CMake refuses to reconfigure it.
if ! grep -qsx "CMAKE_HOME_DIRECTORY:INTERNAL=$SRC" "$BUILD/CMakeCache.txt"; then
	rm -rf "$BUILD"
fi
log "configuring $SRC in $BUILD"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$DEST/cmake.log" 2>&1 ||
	{ tail -20 "$DEST/cmake.log" >&2; die "cmake failed (log: $DEST/cmake.log)"; }
log "building with $(nproc) jobs (several minutes on 2 cores)"
cmake --build "$BUILD" -j "$(nproc)" >"$DEST/build.log" 2>&1 ||
	{ tail -20 "$DEST/build.log" >&2; die "build failed (log: $DEST/build.log)"; }
# Replace the binary in one step, so compare.sh never sees half a file.
cp "$BUILD/flashmq" "$DEST/flashmq.new"
mv "$DEST/flashmq.new" "$DEST/flashmq"
version=$("$DEST/flashmq" --version 2>&1 | grep -Eio 'version [0-9][^ ]*' | head -1 || true)
[ -n "$version" ] || version="? (version unknown)"
log "built FlashMQ ${version#* }: $DEST/flashmq"
log "scripts/compare.sh finds it there (or point FLASHMQ=path at another binary)"
