#!/usr/bin/env bash
# Brings docker-compose.yml up for real and checks it end to end: both
# containers healthy, alice/wonderland accepted, a wrong password and an
# anonymous client refused (scripts/compose-login, a real MQTT client); then
# takes everything down.
#
# Runs as root on a Debian machine (CI runs it from .ci/run). What it needs
# and does not find, it installs from Debian: docker.io, docker-compose,
# and, when the base images cannot be pulled, mmdebstrap and busybox-static
# to make local stand-ins for exactly the images the Dockerfiles name:
#   golang:X        a Debian bookworm root filesystem with this machine's Go
#   node:20-alpine  the same with this machine's node and npm, busybox wget
#                   and the user node (uid 1000)
#   gcr.io/distroless/static-debian12:nonroot
#                   users root and nonroot (uid 65532), the CA bundle, /tmp
#   busybox:X       a static busybox
# Real images are used whenever they are present or can be pulled.
#
# When no Docker engine is running, it starts dockerd (overlay2, its own
# data root under /var/lib/mqttd-compose-smoke, so built images and stand-ins
# are reused by the next run) and at the end stops it and leaves the host's
# network as it found it: the iptables filter and nat tables, ip_forward and
# docker0. An engine that was already running is used and left running.
#
#   sudo bash scripts/compose-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=/var/lib/mqttd-compose-smoke
RUN=/run/mqttd-compose-smoke
PROJECT=mqttdsmoke
started=$(date +%s)
mkdir -p "$RUN"

say() { echo "compose-smoke: $*"; }
die() { echo "compose-smoke: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it starts dockerd and installs Debian packages); run: sudo bash scripts/compose-smoke.sh"

# --- packages ---------------------------------------------------------------
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    timeout 300 apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}
# Debian's docker.io ships dockerd and a matching client in /usr/bin. A
# docker client found first on PATH may be another version: the client
# that comes with the engine is the one used here.
[ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ] || apt_install docker.io
command -v iptables >/dev/null || apt_install iptables
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker) || die "no docker client after installing docker.io"
if docker-compose version >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
elif "$DOCKER" compose version >/dev/null 2>&1; then
  COMPOSE=("$DOCKER" compose)
else
  apt_install docker-compose
  COMPOSE=(docker-compose)
fi
say "docker client $("$DOCKER" version --format '{{.Client.Version}}' 2>/dev/null | head -1) ($DOCKER), compose: ${COMPOSE[*]}"

# --- the engine -------------------------------------------------------------
own_engine=
net_saved=
save_network() {
  mkdir -p "$RUN"
  cat /proc/sys/net/ipv4/ip_forward >"$RUN/ip_forward"
  iptables-save -t filter >"$RUN/filter.rules"
  iptables-save -t nat >"$RUN/nat.rules"
  if ip link show docker0 >/dev/null 2>&1; then echo yes; else echo no; fi >"$RUN/docker0"
  net_saved=1
}
# normalize drops counters and comments from iptables-save output, and
# prints nothing for a table that holds no rule, no chain of its own and
# only ACCEPT policies: the same as no table at all.
normalize() {
  local r
  r=$(grep -v '^#' | sed 's/ *\[[0-9]*:[0-9]*\]//')
  grep -q -v -E '^(|\*[a-z]+|COMMIT|:(INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ACCEPT)$' <<<"$r" || return 0
  echo "$r"
}
rules() { iptables-save -t "$1" | normalize; }
restore_network() {
  [ -n "$net_saved" ] || return 0
  for table in filter nat; do
    if [ -n "$(normalize <"$RUN/$table.rules")" ]; then
      iptables-restore -T "$table" <"$RUN/$table.rules" || true
    else # it was empty: empty it again
      iptables -t "$table" -F && iptables -t "$table" -X || true
      for chain in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
        iptables -t "$table" -P "$chain" ACCEPT 2>/dev/null || true
      done
    fi
  done
  # Chains dockerd made and the restore above did not know (a restore of one
  # table leaves no chain behind, but be explicit for other backends).
  for table in filter nat; do
    for chain in $(iptables -t "$table" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {print $2}'); do
      grep -q "^:$chain " "$RUN/$table.rules" && continue
      iptables -t "$table" -F "$chain" 2>/dev/null || true
      iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  cat "$RUN/ip_forward" >/proc/sys/net/ipv4/ip_forward
  if [ "$(cat "$RUN/docker0")" = no ] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0 || true
  fi
  local changed=
  for table in filter nat; do
    if ! diff <(normalize <"$RUN/$table.rules") <(rules "$table"); then
      changed="$changed iptables-$table"
    fi
  done
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$(cat "$RUN/ip_forward")" ] || changed="$changed ip_forward"
  [ "$(cat "$RUN/docker0")" = yes ] || ! ip link show docker0 >/dev/null 2>&1 || changed="$changed docker0"
  if [ -n "$changed" ]; then
    echo "compose-smoke: FAILED: the host's network is not as it was:$changed" >&2
    return 1
  fi
  say "network restored (iptables filter and nat, ip_forward=$(cat /proc/sys/net/ipv4/ip_forward), docker0)"
}
stop_engine() {
  [ -n "$own_engine" ] || return 0
  local pid
  pid=$(cat "$RUN/dockerd.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  own_engine=
  say "dockerd stopped"
}
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }
cleanup() {
  local rc=$?
  set +e
  if [ -n "${compose_up:-}" ]; then
    [ "$rc" = 0 ] || { compose ps; compose logs --no-color --tail=50; }
    compose down --volumes --remove-orphans >/dev/null 2>&1
  fi
  rm -rf "$STATE"/standin.*
  stop_engine
  restore_network || rc=1
  say "done in $(($(date +%s) - started)) s, exit $rc"
  exit "$rc"
}
trap cleanup EXIT

if "$DOCKER" info >/dev/null 2>&1; then
  say "using the Docker engine that is already running (left running afterwards)"
else
  save_network
  mkdir -p "$STATE"
  say "starting dockerd (log: $RUN/dockerd.log)"
  own_engine=1
  # Started in its own session so that it outlives no shell but ours: the
  # trap above stops it by its pid.
  setsid dockerd --data-root "$STATE/docker" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
    --storage-driver overlay2 --host unix:///var/run/docker.sock >"$RUN/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$RUN/dockerd.log"; die "dockerd did not answer within 60 s"; }
fi

# --- base images --------------------------------------------------------------
rootfs_tar=$STATE/bookworm-minbase.tar
debian_rootfs() { # a bookworm minbase tree in $1, from a cached tarball
  if [ ! -s "$rootfs_tar" ]; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    say "building a Debian bookworm root filesystem (mmdebstrap --variant=minbase)"
    # libstdc++6: the node binary needs it.
    mmdebstrap --quiet --variant=minbase --include=libstdc++6 bookworm "$STATE/partial.tar" \
      http://deb.debian.org/debian || die "mmdebstrap failed"
    mv "$STATE/partial.tar" "$rootfs_tar"
  fi
  mkdir -p "$1"
  tar -C "$1" -xf "$rootfs_tar"
  # This machine's CA bundle: builds fetch Go modules and npm packages
  # through whatever this machine trusts.
  mkdir -p "$1/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/"
}
# copy_busybox copies a static busybox (Debian's busybox-static) to $1.
copy_busybox() {
  dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static
  cp /bin/busybox "$1"
}
import_dir() { # import_dir DIR IMAGE [--change ...]...
  local dir=$1 image=$2; shift 2
  tar -C "$dir" -c . | "$DOCKER" import --change "LABEL org.mqttd.stand-in=true" "$@" - "$image" >/dev/null \
    || die "docker import $image failed"
  say "made a local stand-in for $image"
}
stand_in() {
  local image=$1 dir
  dir=$(mktemp -d "$STATE/standin.XXXXXX")
  case "$image" in
  golang:*)
    debian_rootfs "$dir"
    mkdir -p "$dir/usr/local" "$dir/go"
    cp -a "$(go env GOROOT)" "$dir/usr/local/go"
    import_dir "$dir" "$image" --change 'ENV PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV GOPATH=/go' --change 'ENV GOTOOLCHAIN=local' --change 'WORKDIR /go' --change 'CMD ["bash"]'
    ;;
  node:*)
    local node npmdir
    node=$(readlink -f "$(command -v node)") || die "node is not installed (a node stand-in needs it)"
    npmdir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    debian_rootfs "$dir"
    cp "$node" "$dir/usr/local/bin/node"
    mkdir -p "$dir/usr/local/lib/node_modules"
    cp -a "$npmdir" "$dir/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$dir/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$dir/usr/local/bin/npx"
    copy_busybox "$dir/bin/busybox"
    ln -s /bin/busybox "$dir/usr/local/bin/wget"
    echo "node:x:1000:" >>"$dir/etc/group"
    echo "node:x:1000:1000::/home/node:/bin/sh" >>"$dir/etc/passwd"
    mkdir -p "$dir/home/node" && chown 1000:1000 "$dir/home/node"
    import_dir "$dir" "$image" --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]'
    ;;
  gcr.io/distroless/static*)
    mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" "$dir/home/nonroot" "$dir/root"
    chmod 1777 "$dir/tmp"
    chown 65532:65532 "$dir/home/nonroot"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$dir/etc/group"
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
    import_dir "$dir" "$image" --change 'USER 65532' --change 'WORKDIR /home/nonroot'
    ;;
  busybox:*)
    mkdir -p "$dir/bin"
    copy_busybox "$dir/bin/busybox"
    ln -s busybox "$dir/bin/sh"
    ln -s busybox "$dir/bin/wget"
    import_dir "$dir" "$image" --change 'CMD ["sh"]'
    ;;
  *) die "no stand-in recipe for $image: make it pullable or add one here" ;;
  esac
  rm -rf "$dir"
}
for image in $(awk 'toupper($1) == "FROM" {print $2}' Dockerfile examples/hooks-node/Dockerfile | sort -u); do
  if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    kind=$("$DOCKER" image inspect --format '{{index .Config.Labels "org.mqttd.stand-in"}}' "$image" 2>/dev/null)
    say "$image: present${kind:+ (a local stand-in from an earlier run)}"
  elif timeout 60 "$DOCKER" pull -q "$image" >/dev/null 2>&1; then
    say "$image: pulled"
  else
    stand_in "$image"
  fi
done

# --- the stack ------------------------------------------------------------------
# Compose reads HOOKS_SECRET from the environment (before .env).
export HOOKS_SECRET
HOOKS_SECRET=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
# Debian's docker-compose 1.29 builds through the engine's API (the classic
# builder), which needs no buildx plugin.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
compose_up=1
say "docker-compose up --build -d"
t0=$(date +%s)
compose up --build -d >"$RUN/compose-up.log" 2>&1 || { tail -40 "$RUN/compose-up.log"; die "docker-compose up failed (log: $RUN/compose-up.log)"; }
say "built and started in $(($(date +%s) - t0)) s; waiting for both health checks"
healthy() { "$DOCKER" inspect --format '{{.State.Health.Status}}' "$(compose ps -q "$1")" 2>/dev/null; }
for _ in $(seq 1 90); do
  [ "$(healthy hooks-node)" = healthy ] && [ "$(healthy mqttd)" = healthy ] && break
  sleep 2
done
for s in hooks-node mqttd; do
  [ "$(healthy "$s")" = healthy ] || die "$s is $(healthy "$s" || echo 'not running'), not healthy, after 180 s"
done
say "both containers healthy after $(($(date +%s) - t0)) s"

go run ./scripts/compose-login -addr 127.0.0.1:1883 || die "the MQTT checks failed"
say "the stack works end to end"
