#!/usr/bin/env bash
# compare.sh: the same MQTT scenarios against mqttd and its peers (Mosquitto,
# mochi, nats-server's MQTT gateway, FlashMQ), side by side on this machine,
# measured by tools/mqttbench.
#
# Runs are interleaved (round 1: scenario 1 on every broker, scenario 2 on
# every broker, ...; then round 2) so that slow drifts of the machine hit
# every broker alike, and every run gets a freshly started broker so that
# no run inherits another's memory, queues or JetStream store. Each broker
# listens on its own loopback port; its pid goes to mqttbench load -pid,
# which reports the broker's CPU per delivered message next to the
# throughput: on a small shared box throughput alone mostly measures who
# got the cores. The report gives the median of the rounds, p50/p99
# latency and the messages lost, and records the date, the machine, the
# load generator's settings and every broker's version and configuration.
#
# Usage: scripts/compare.sh [options]
#   --quick            smoke-check the script: 1 round of 2 s per run, no
#                      waiting for a quiet machine (the figures mean little)
#   --rounds N         rounds of every scenario on every broker (default 3)
#   --duration D       measured publishing time per run (default 10s)
#   --warmup D         unmeasured publishing before it (default 1s)
#   --drain D          most time to wait for stragglers after it (default 10s;
#                      a run stops waiting as soon as everything arrived or
#                      nothing moved for a second, so a slow broker's queue
#                      is not counted as lost)
#   --brokers LIST     comma-separated subset of mqttd,mosquitto,mochi,nats,flashmq
#   --scenarios LIST   comma-separated subset of
#                      p2p,pairs10q0,pairs10,pairs100,fanout,fanin (the
#                      default: all of these) and fanin64 (fan-in with 64
#                      outstanding, as measured before)
#   --protocols LIST   MQTT versions, comma-separated: 4 (3.1.1) and/or 5 (5.0);
#                      default 4. With both, each broker runs each scenario in
#                      both back to back (order alternating by round), and the
#                      report adds an MQTT column and 5.0 / 3.1.1 ratios.
#                      nats-server speaks 3.1.1 only and sits out 5.0 runs
#   --protocol P       the same with one version (--protocol 5)
#   --v5-props         5.0 runs send a message expiry and a user property with
#                      every PUBLISH (mqttbench load -v5-props); default: none
#   --baseline REV     also run mqttd built from git revision REV (3.1.1 only),
#                      labelled mqttd@REV, next to the working tree's mqttd:
#                      earlier figures measured in the same run
#   --pin              broker on CPU 1, load generator on CPU 0, GOMAXPROCS=1
#                      for the Go brokers and one thread for FlashMQ: one
#                      core each, comparable
#   --idle N           also measure broker RSS per idle connection with N
#                      connections (one fresh broker each; default off)
#   --port-base P      first of the loopback ports used (default 18831;
#                      mqttd P (admin P+5), mosquitto P+1, mochi P+2..P+4,
#                      --baseline's mqttd P+6 (admin P+7), nats P+8 (its NATS
#                      client port P+9), flashmq P+10)
#   --quiet-wait S     before each run wait up to S seconds for other
#                      processes to go quiet (default 30; 0 = don't wait)
#   --max-other PCT    leave runs during which other processes used more than
#                      PCT % CPU (100 = one core) out of the table; they stay
#                      in results.jsonl (default 0 = keep all)
#   --out DIR          keep results.jsonl, report.md and broker logs in DIR
#
# Where the peers come from. mqttd is built from this repository. Mosquitto:
# Debian's package, installed with apt-get when missing (root or
# password-less sudo). mochi v2.7.9: `go install` into a temporary GOBIN.
# nats-server v2.15.3: `go install` into the peers' cache directory when it
# is not there yet. FlashMQ is never fetched or built here (CI reaches only
# the Debian, npm and Go proxies): build it once with
# scripts/build-flashmq.sh SRC_DIR from a source tree you provide, or point
# FLASHMQ=/path/to/flashmq at a binary; without either it is skipped with a
# one-line message. The cache directory is $MQTTD_PEERS_CACHE, else
# ${XDG_CACHE_HOME:-~/.cache}/mqttd-compare (outside this repository). A
# broker that cannot be built or installed is skipped with a message; the
# others run.
set -euo pipefail

# Empty ones get their defaults after the options are read, so that
# --quick changes only what was not given explicitly.
ROUNDS=""
DURATION=""
WARMUP=""
DRAIN=""
QUIET_WAIT=""
QUICK=0
BROKERS=mqttd,mosquitto,mochi,nats,flashmq
SCENARIOS=p2p,pairs10q0,pairs10,pairs100,fanout,fanin
PROTOCOLS=4
V5_PROPS=0
PIN=0
IDLE=0
PORT_BASE=18831
MAX_OTHER=0
OUT=""
BASELINE=""
MOCHI_VERSION=v2.7.9
NATS_VERSION=v2.15.3
PEERS_CACHE=${MQTTD_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mqttd-compare}

die() { echo "compare: $*" >&2; exit 2; }
log() { echo "compare: $*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1; shift ;;
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--warmup) WARMUP=${2:?}; shift 2 ;;
	--drain) DRAIN=${2:?}; shift 2 ;;
	--brokers) BROKERS=${2:?}; shift 2 ;;
	--scenarios) SCENARIOS=${2:?}; shift 2 ;;
	--protocols | --protocol) PROTOCOLS=${2:?}; shift 2 ;;
	--v5-props) V5_PROPS=1; shift ;;
	--baseline) BASELINE=${2:?}; shift 2 ;;
	--pin) PIN=1; shift ;;
	--idle) IDLE=${2:?}; shift 2 ;;
	--port-base) PORT_BASE=${2:?}; shift 2 ;;
	--quiet-wait) QUIET_WAIT=${2:?}; shift 2 ;;
	--max-other) MAX_OTHER=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
if [ "$QUICK" = 1 ]; then
	: "${ROUNDS:=1}" "${DURATION:=2s}" "${WARMUP:=500ms}" "${DRAIN:=10s}" "${QUIET_WAIT:=0}"
else
	: "${ROUNDS:=3}" "${DURATION:=10s}" "${WARMUP:=1s}" "${DRAIN:=10s}" "${QUIET_WAIT:=30}"
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ $IDLE =~ ^[0-9]+$ ]] || die "--idle must be a number of connections"
if ! [[ $PORT_BASE =~ ^[0-9]+$ ]] || [ "$PORT_BASE" -lt 1024 ] || [ "$PORT_BASE" -gt 65520 ]; then
	die "--port-base must be 1024..65520"
fi
command -v go >/dev/null || die "go is needed to build mqttbench and mqttd"
PROTOS=()
IFS=, read -r -a want_protos <<<"$PROTOCOLS"
for p in "${want_protos[@]}"; do
	case "$p" in
	4 | 3.1.1) p=4 ;;
	5 | 5.0) p=5 ;;
	*) die "unknown protocol $p (want 4 or 5)" ;;
	esac
	[[ " ${PROTOS[*]} " == *" $p "* ]] || PROTOS+=("$p")
done
[ ${#PROTOS[@]} -gt 0 ] || die "--protocols needs 4, 5 or 4,5"
proto_name() { if [ "$1" = 5 ]; then echo 5.0; else echo 3.1.1; fi; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqttd-compare.XXXXXX")
BPID=""
BSTATE="" # a run's on-disk broker state (nats-server's JetStream store)

# stop_broker: stops the running broker and removes its on-disk state.
stop_broker() {
	if [ -n "$BPID" ]; then
		kill -TERM "$BPID" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$BPID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$BPID" 2>/dev/null || true
		wait "$BPID" 2>/dev/null || true
		BPID=""
	fi
	if [ -n "$BSTATE" ]; then
		rm -rf "$BSTATE"
		BSTATE=""
	fi
}
cleanup() {
	stop_broker
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$PIN" = 1 ]; then
	command -v taskset >/dev/null || die "--pin needs taskset (util-linux)"
	[ "$(nproc)" -ge 2 ] || die "--pin needs at least 2 CPUs"
fi
# Each idle connection is a descriptor in the broker too, and brokers
# inherit this shell's limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "building mqttbench"
(cd "$REPO" && go build -o "$TMP/mqttbench" ./tools/mqttbench)
BENCH=("$TMP/mqttbench")
[ "$PIN" = 1 ] && BENCH=(taskset -c 0 "$TMP/mqttbench")

declare -A PORT=([mqttd]=$PORT_BASE [mosquitto]=$((PORT_BASE + 1)) [mochi]=$((PORT_BASE + 2)) [mqttd-base]=$((PORT_BASE + 6))
	[nats]=$((PORT_BASE + 8)) [flashmq]=$((PORT_BASE + 10)))
# A broker's other listeners, which must be free too.
declare -A EXTRA_PORTS=([mqttd]=$((PORT_BASE + 5)) [mqttd-base]=$((PORT_BASE + 7))
	[mochi]="$((PORT_BASE + 3)) $((PORT_BASE + 4))" [nats]=$((PORT_BASE + 9)))
declare -A ADMIN_PORT=([mqttd]=$((PORT_BASE + 5)) [mqttd-base]=$((PORT_BASE + 7)))
declare -A LABEL=([mqttd]=mqttd [mosquitto]=mosquitto [mochi]=mochi [nats]=nats-server [flashmq]=flashmq)
declare -A SKIPPED=()
declare -A VERSION=()
# CONFIG: how each broker was configured, one line for the report.
declare -A CONFIG=(
	[mqttd]="generated config: one TCP listener, everything else at its defaults"
	[mosquitto]="set_tcp_nodelay true, persistence false, limits at their defaults (20 in flight, 1000 queued per client)"
	[mochi]="its cmd with default settings"
)
AVAILABLE=()

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 1
	fi
}

prepare_mqttd() {
	if [ ! -d "$REPO/cmd/mqttd" ]; then
		SKIPPED[mqttd]="cmd/mqttd does not exist yet"
		return 1
	fi
	if ! (cd "$REPO" && go build -o "$TMP/mqttd" ./cmd/mqttd) >"$TMP/mqttd-build.log" 2>&1; then
		SKIPPED[mqttd]="cmd/mqttd does not build: $(head -c 300 "$TMP/mqttd-build.log" | tr '\n' ' ')"
		return 1
	fi
	VERSION[mqttd]="$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo "working tree")"
}

# Debian installs mosquitto in /usr/sbin, which is not on every user's PATH.
find_mosquitto() {
	command -v mosquitto || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; }
}

MOSQUITTO=""
prepare_mosquitto() {
	if ! MOSQUITTO=$(find_mosquitto); then
		log "mosquitto not found; installing Debian's package"
		# The package list may be stale or empty on a fresh machine, and
		# noninteractive keeps debconf from waiting for a terminal.
		if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; } >"$TMP/apt.log" 2>&1; then
			SKIPPED[mosquitto]="could not install mosquitto with apt-get (root or sudo needed; see apt output)"
			tail -5 "$TMP/apt.log" >&2 || true
			return 1
		fi
		MOSQUITTO=$(find_mosquitto) || { SKIPPED[mosquitto]="apt-get installed no mosquitto binary"; return 1; }
	fi
	# mosquitto -h prints the version and exits non-zero.
	VERSION[mosquitto]="$( ("$MOSQUITTO" -h 2>&1 || true) | head -1 | sed 's/^mosquitto version //')"
}

prepare_mochi() {
	log "installing mochi $MOCHI_VERSION into a temporary GOBIN"
	# Outside the repository, so our go.mod neither constrains nor records it.
	if ! (cd "$TMP" && GOBIN="$TMP/gobin" GOFLAGS=-mod=mod go install "github.com/mochi-mqtt/server/v2/cmd@$MOCHI_VERSION") >"$TMP/mochi-install.log" 2>&1; then
		SKIPPED[mochi]="go install of mochi $MOCHI_VERSION failed: $(tail -c 300 "$TMP/mochi-install.log" | tr '\n' ' ')"
		return 1
	fi
	VERSION[mochi]=$MOCHI_VERSION
}

# nats-server's MQTT gateway. Installed once into the peers' cache (it is a
# large build), outside the repository so our go.mod neither constrains nor
# records it; a binary of another version there is replaced.
NATS=""
prepare_nats() {
	NATS="$PEERS_CACHE/gobin/nats-server"
	local have=""
	[ -x "$NATS" ] && have=$("$NATS" --version 2>/dev/null | awk '{print $NF}')
	if [ "$have" != "$NATS_VERSION" ]; then
		log "installing nats-server $NATS_VERSION into $PEERS_CACHE/gobin"
		mkdir -p "$PEERS_CACHE/gobin"
		if ! (cd "$TMP" && GOBIN="$PEERS_CACHE/gobin" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$NATS_VERSION") >"$TMP/nats-install.log" 2>&1; then
			SKIPPED[nats]="go install of nats-server $NATS_VERSION failed: $(tail -c 300 "$TMP/nats-install.log" | tr '\n' ' ')"
			return 1
		fi
	fi
	VERSION[nats]="$("$NATS" --version 2>&1 | awk '{print $NF}') (go install github.com/nats-io/nats-server/v2@$NATS_VERSION)"
	CONFIG[nats]="MQTT gateway (3.1.1 only) with JetStream, a fresh file store in a temporary directory per run, server_name set, MQTT settings at their defaults (max_ack_pending 1024)"
}

# FlashMQ, built beforehand by scripts/build-flashmq.sh (or FLASHMQ=path).
FLASHMQ_BIN=""
prepare_flashmq() {
	FLASHMQ_BIN=${FLASHMQ:-$PEERS_CACHE/flashmq/flashmq}
	if [ ! -x "$FLASHMQ_BIN" ]; then
		SKIPPED[flashmq]="no binary at $FLASHMQ_BIN (build one with scripts/build-flashmq.sh SRC_DIR, or set FLASHMQ=path)"
		return 1
	fi
	VERSION[flashmq]="$("$FLASHMQ_BIN" --version 2>&1 | grep -Eio 'version [0-9][^ ]*' | head -1 | awk '{print $2}') ($FLASHMQ_BIN)"
	CONFIG[flashmq]="thread_count $(flashmq_threads), rlimit_nofile = this shell's limit, allow_anonymous true, no storage_dir (no persistence), tcp_nodelay true on the listener, log_level warning; limits at their defaults (max_qos_msg_pending_per_client 512)"
}

# FlashMQ runs one worker thread per core it may use, like the Go brokers'
# GOMAXPROCS: all cores shared, one when pinned.
flashmq_threads() { if [ "$PIN" = 1 ]; then echo 1; else nproc; fi; }

# The baseline: mqttd as it was at a git revision, from `git archive` (the
# repository and its work tree stay untouched), built like the current one.
prepare_mqttd-base() {
	local rev
	if ! rev=$(cd "$REPO" && git rev-parse --short --verify "$BASELINE^{commit}" 2>/dev/null); then
		SKIPPED[mqttd-base]="--baseline $BASELINE is not a commit of this repository"
		return 1
	fi
	mkdir -p "$TMP/base"
	if ! { (cd "$REPO" && git archive "$rev") | tar -x -C "$TMP/base" &&
		(cd "$TMP/base" && go build -o "$TMP/mqttd-base" ./cmd/mqttd); } >"$TMP/mqttd-base-build.log" 2>&1; then
		SKIPPED[mqttd-base]="mqttd at $rev does not build: $(tail -c 300 "$TMP/mqttd-base-build.log" | tr '\n' ' ')"
		return 1
	fi
	LABEL[mqttd-base]="mqttd@$rev"
	VERSION[mqttd-base]="$rev (--baseline $BASELINE; 3.1.1 runs only)"
}

IFS=, read -r -a WANT_BROKERS <<<"$BROKERS"
# The baseline runs right after the current mqttd, so the two are measured
# as close together in time as the interleaving allows.
if [ -n "$BASELINE" ]; then
	with_base=()
	for b in "${WANT_BROKERS[@]}"; do
		with_base+=("$b")
		[ "$b" = mqttd ] && with_base+=(mqttd-base)
	done
	[[ " ${with_base[*]} " == *" mqttd-base "* ]] || with_base+=(mqttd-base)
	WANT_BROKERS=("${with_base[@]}")
fi
for b in "${WANT_BROKERS[@]}"; do
	case "$b" in
	mqttd | mosquitto | mochi | nats | flashmq | mqttd-base) ;;
	*) die "unknown broker $b (want mqttd, mosquitto, mochi, nats, flashmq)" ;;
	esac
	if "prepare_$b"; then
		AVAILABLE+=("$b")
	else
		log "skipping $b: ${SKIPPED[$b]}"
	fi
done
[ ${#AVAILABLE[@]} -gt 0 ] || die "no broker available"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker NAME: starts it fresh in the background, sets BPID and
# returns once its MQTT port accepts connections.
start_broker() {
	local name=$1 port=${PORT[$1]} cmd=() ports=("${PORT[$1]}")
	# shellcheck disable=SC2206 # a list of port numbers
	ports+=(${EXTRA_PORTS[$name]:-})
	for p in "${ports[@]}"; do
		port_free "$p" || die "port $p is already in use on 127.0.0.1 (choose another --port-base)"
	done
	case "$name" in
	mqttd | mqttd-base)
		# No flags for the port: mqttd takes its listeners from config.
		# Its admin HTTP listener (default 127.0.0.1:9180) moves to one of
		# our ports too, so another mqttd on this machine cannot clash.
		printf 'listeners:\n  default: {type: tcp, bind: "127.0.0.1:%s"}\nadmin: {bind: "127.0.0.1:%s"}\n' \
			"$port" "${ADMIN_PORT[$name]}" >"$TMP/$name.yaml"
		cmd=("$TMP/$name" --config "$TMP/$name.yaml")
		;;
	mosquitto)
		# Nagle off like the Go brokers (Go sets TCP_NODELAY by default);
		# with it on, small messages stall ~40 ms on delayed ACKs. Other
		# limits stay at their defaults (20 in flight, 1000 queued per
		# client): a scenario that goes past them shows what Mosquitto
		# does out of the box.
		cat >"$TMP/mosquitto.conf" <<-EOF
			listener $port 127.0.0.1
			allow_anonymous true
			set_tcp_nodelay true
			persistence false
		EOF
		cmd=("$MOSQUITTO" -c "$TMP/mosquitto.conf")
		;;
	mochi)
		# mochi's cmd also opens a WebSocket and an HTTP info listener;
		# keep them on loopback next to the TCP port.
		cmd=("$TMP/gobin/cmd" -tcp "127.0.0.1:$port" -ws "127.0.0.1:$((port + 1))" -info "127.0.0.1:$((port + 2))")
		;;
	nats)
		# MQTT needs JetStream (sessions and QoS 1 messages live in
		# streams) and JetStream needs a server_name. The store is a
		# fresh directory per run, removed by stop_broker. The NATS
		# client listener moves off 4222 to one of our ports.
		BSTATE="$TMP/nats-store.$RANDOM"
		mkdir -p "$BSTATE"
		cat >"$TMP/nats.conf" <<-EOF
			server_name: mqttd-compare
			listen: "127.0.0.1:${EXTRA_PORTS[nats]}"
			jetstream {
				store_dir: "$BSTATE"
			}
			mqtt {
				listen: "127.0.0.1:$port"
			}
		EOF
		cmd=("$NATS" -c "$TMP/nats.conf")
		;;
	flashmq)
		# No storage_dir: nothing is persisted. Nagle off as for the
		# others (FlashMQ's default is on). Queue limits stay at their
		# defaults, as for Mosquitto. Its descriptor limit is the one this
		# shell has (it would try to raise it to a million and log an
		# error when not allowed).
		cat >"$TMP/flashmq.conf" <<-EOF
			thread_count $(flashmq_threads)
			rlimit_nofile $(ulimit -n | sed s/unlimited/1000000/)
			allow_anonymous true
			log_level warning
			listen {
				protocol mqtt
				inet_protocol ip4
				inet4_bind_address 127.0.0.1
				port $port
				tcp_nodelay true
			}
		EOF
		cmd=("$FLASHMQ_BIN" --config-file "$TMP/flashmq.conf")
		;;
	esac
	if [ "$PIN" = 1 ]; then
		# Go sizes GOMAXPROCS from the affinity mask anyway; say it
		# explicitly so the comparison does not rest on that detail.
		case "$name" in
		mosquitto | flashmq) ;;
		*) cmd=(env GOMAXPROCS=1 "${cmd[@]}") ;;
		esac
		cmd=(taskset -c 1 "${cmd[@]}")
	fi
	# exec chains (taskset, env) keep the pid, so $! is the broker itself.
	# Each broker runs in a fresh working directory, so mqttd's default
	# store (data/store) is neither the checkout's nor an earlier run's.
	local wd
	wd=$(mktemp -d "$TMP/wd.XXXXXX")
	(cd "$wd" && exec "${cmd[@]}") >>"$TMP/$name.log" 2>&1 &
	BPID=$!
	for _ in $(seq 100); do
		if ! kill -0 "$BPID" 2>/dev/null; then
			log "$name exited at start-up; last log lines:"
			tail -5 "$TMP/$name.log" >&2
			BPID=""
			return 1
		fi
		port_free "$port" || return 0
		sleep 0.05
	done
	log "$name did not listen on 127.0.0.1:$port within 5 s"
	stop_broker
	return 1
}

# cpu_busy: CPU time the whole machine spent running tasks (user, nice,
# system, steal; as mqttbench counts it), in ticks.
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$9; exit}' /proc/stat; }

# wait_quiet: other processes (builds, test suites) skew every figure on a
# 2-core box. Wait until they use under a quarter of a core over a second,
# or give up after --quiet-wait seconds and say so; mqttbench also reports
# other processes' CPU per run (the "other CPU %" column).
wait_quiet() {
	local waited=0 a b busy hz=100
	while :; do
		a=$(cpu_busy)
		sleep 1
		b=$(cpu_busy)
		busy=$(((b - a) * 100 / hz))
		[ "$busy" -lt 25 ] && return 0
		if [ "$waited" -ge "$QUIET_WAIT" ]; then
			log "machine still busy (${busy}% of a core used by other processes); measuring anyway"
			return 0
		fi
		[ "$waited" = 0 ] && log "waiting for other processes to go quiet (${busy}% of a core busy)"
		waited=$((waited + 1))
	done
}

# Scenario id -> title and mqttbench flags. All are closed loops with
# 64-byte payloads: every publisher keeps WINDOW messages outstanding (sent
# and not yet received by all its subscribers; at QoS 1 also not yet
# acknowledged) and sends the next one as soon as one slot frees up
# (-burst 1), one write() per PUBLISH as a device does. That measures
# saturated throughput. fanin is the case where a broker that acknowledges
# faster than its one subscriber drains can lose acknowledged messages: ten
# publishers with 256 outstanding each.
WINDOW=256
LOADGEN_FLAGS=(-size 64 -burst 1 -duration "$DURATION" -warmup "$WARMUP" -drain "$DRAIN")
declare -A TITLE=(
	[p2p]="1→1 QoS 0"
	[pairs10q0]="10→10 QoS 0 (pairs)"
	[pairs10]="10→10 QoS 1 (pairs)"
	[pairs100]="100→100 QoS 1 (pairs)"
	[fanout]="1→100 fan-out QoS 0"
	[fanin]="10→1 fan-in QoS 1, window 256"
	[fanin64]="10→1 fan-in QoS 1, window 64"
)
declare -A ARGS=(
	[p2p]="-scenario pairs -pubs 1 -qos 0 -window $WINDOW"
	[pairs10q0]="-scenario pairs -pubs 10 -qos 0 -window $WINDOW"
	[pairs10]="-scenario pairs -pubs 10 -qos 1 -window $WINDOW"
	[pairs100]="-scenario pairs -pubs 100 -qos 1 -window $WINDOW"
	[fanout]="-scenario fanout -pubs 1 -subs 100 -qos 0 -window $WINDOW"
	[fanin]="-scenario fanin -pubs 10 -subs 1 -qos 1 -window $WINDOW"
	[fanin64]="-scenario fanin -pubs 10 -subs 1 -qos 1 -window 64"
)
IFS=, read -r -a SCEN <<<"$SCENARIOS"
for s in "${SCEN[@]}"; do
	[ -n "${TITLE[$s]:-}" ] || die "unknown scenario $s (want p2p, pairs10q0, pairs10, pairs100, fanout, fanin, fanin64)"
done

RESULTS="$TMP/results.jsonl"
: >"$RESULTS"
PLACEMENT=shared
[ "$PIN" = 1 ] && PLACEMENT="pinned (broker CPU 1, mqttbench CPU 0)"
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
PROTO_NAMES=()
for p in "${PROTOS[@]}"; do PROTO_NAMES+=("$(proto_name "$p")"); done
log "brokers: ${AVAILABLE[*]}; scenarios: ${SCEN[*]}; MQTT ${PROTO_NAMES[*]}; $ROUNDS round(s) of $DURATION; $PLACEMENT"

FAILED=0
for round in $(seq "$ROUNDS"); do
	# With two protocols, a broker runs a scenario in both back to back,
	# 3.1.1 first in odd rounds and 5.0 first in even ones, so neither
	# always gets the warmer (or cooler) machine.
	order=("${PROTOS[@]}")
	if [ ${#PROTOS[@]} = 2 ] && [ $((round % 2)) = 0 ]; then
		order=("${PROTOS[1]}" "${PROTOS[0]}")
	fi
	for s in "${SCEN[@]}"; do
		for b in "${AVAILABLE[@]}"; do
			for proto in "${order[@]}"; do
				# The baseline stands for the figures before MQTT 5.0, and
				# nats-server's gateway speaks 3.1.1 only.
				if [ "$proto" = 5 ] && { [ "$b" = mqttd-base ] || [ "$b" = nats ]; }; then
					continue
				fi
				pflags=(-protocol "$proto")
				[ "$proto" = 5 ] && [ "$V5_PROPS" = 1 ] && pflags+=(-v5-props)
				[ "$QUIET_WAIT" = 0 ] || wait_quiet
				start_broker "$b" || { FAILED=$((FAILED + 1)); continue; }
				rc=0
				# shellcheck disable=SC2086 # ARGS holds several flags
				line=$("${BENCH[@]}" load -json -broker "127.0.0.1:${PORT[$b]}" -pid "$BPID" "${pflags[@]}" \
					"${LOADGEN_FLAGS[@]}" -label "${LABEL[$b]}" -case "${TITLE[$s]}" \
					${ARGS[$s]} 2>>"$TMP/mqttbench.log") || rc=$?
				stop_broker
				what="round $round, ${TITLE[$s]}, ${LABEL[$b]}, MQTT $(proto_name "$proto")"
				if [ -z "$line" ]; then
					log "$what: mqttbench printed no result (exit $rc; see its log)"
					FAILED=$((FAILED + 1))
					continue
				fi
				echo "$line" >>"$RESULTS"
				rate=$(grep -o '"delivered_per_s":[0-9.e+]*' <<<"$line" | cut -d: -f2 || true)
				other=$(grep -o '"other_cpu_pct":[0-9.e+]*' <<<"$line" | cut -d: -f2 || true)
				inflight=$(grep -o '"inflight":[0-9]*' <<<"$line" | cut -d: -f2 || true)
				lost=$(grep -o '"lost":[0-9]*' <<<"$line" | cut -d: -f2 || true)
				status=ok
				if [ "$rc" != 0 ]; then
					status="FAILED (exit $rc): $(grep -o '"errors":\[[^]]*\]' <<<"$line" || true)"
					FAILED=$((FAILED + 1))
				fi
				[ "${inflight:-0}" = 0 ] || status="$status, in flight ≤ $inflight"
				[ "${lost:-0}" = 0 ] || status="$status, lost $lost"
				log "$what: $(printf '%.0f' "${rate:-0}") del/s, other processes $(printf '%.0f' "${other:-0}")% CPU, $status"
			done
		done
	done
done

IDLE_LINES=()
if [ "$IDLE" -gt 0 ]; then
	for b in "${AVAILABLE[@]}"; do
		# Idle connections use the first protocol listed.
		[ "${PROTOS[0]}" = 5 ] && [ "$b" = nats ] && continue
		start_broker "$b" || continue
		sleep 0.5 # let start-up allocations settle before the first RSS reading
		rc=0
		line=$("${BENCH[@]}" idle -json -protocol "${PROTOS[0]}" -broker "127.0.0.1:${PORT[$b]}" -pid "$BPID" -conns "$IDLE" -label "${LABEL[$b]}" 2>>"$TMP/mqttbench.log") || rc=$?
		stop_broker
		kb=$(grep -o '"kb_per_conn":[0-9.e+-]*' <<<"$line" | cut -d: -f2 || true)
		before=$(grep -o '"rss_before_kb":[0-9]*' <<<"$line" | cut -d: -f2 || true)
		after=$(grep -o '"rss_after_kb":[0-9]*' <<<"$line" | cut -d: -f2 || true)
		if [ "$rc" = 0 ] && [ -n "$kb" ]; then
			IDLE_LINES+=("| ${LABEL[$b]} | $IDLE | $((before / 1024)) → $((after / 1024)) MB | $(printf '%.1f' "$kb") kB |")
		else
			IDLE_LINES+=("| ${LABEL[$b]} | $IDLE | failed (exit $rc) | |")
		fi
	done
fi

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)
{
	echo "### Side by side, $STARTED"
	echo
	echo "- machine: $(nproc) CPUs ($cpu_model), $mem, kernel $(uname -r), $(go version | awk '{print $3}')"
	[ "$QUICK" = 1 ] && echo "- **--quick: a smoke check of the script; these figures are not results**"
	echo "- placement: $PLACEMENT; $ROUNDS round(s) (median shown), brokers interleaved and started fresh per run"
	echo "- load generator: tools/mqttbench at $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo "working tree"), raw sockets, one write() per PUBLISH; \`load ${LOADGEN_FLAGS[*]}\`, closed loop with $WINDOW messages outstanding per publisher (fanin64: 64), in-flight limit = window"
	# shellcheck disable=SC2016 # the backquotes are Markdown
	echo "- scenarios:$(for s in "${SCEN[@]}"; do printf ' %s = `%s`;' "$s" "${ARGS[$s]}"; done | sed 's/;$//')"
	echo "- broker CPU per delivery from /proc/PID/stat; latency from publish to receipt; lost = messages published and never delivered, summed over the cell's runs (at QoS 1 any loss fails the run; \`unacked\` in results.jsonl counts those never acknowledged either)"
	props=""
	[ "$V5_PROPS" = 1 ] && [[ " ${PROTOS[*]} " == *" 5 "* ]] && props=" (5.0 PUBLISH with a message expiry and a user property)"
	echo "- MQTT ${PROTO_NAMES[*]}$props"
	for b in "${AVAILABLE[@]}"; do
		echo "- ${LABEL[$b]}: ${VERSION[$b]:-}; ${CONFIG[$b]:-}"
	done
	for b in "${!SKIPPED[@]}"; do
		echo "- $b: skipped, ${SKIPPED[$b]}"
	done
	echo
	"$TMP/mqttbench" report -max-other "$MAX_OTHER" "$RESULTS"
	if [ ${#IDLE_LINES[@]} -gt 0 ]; then
		echo
		echo "| broker | idle connections | broker RSS | per connection |"
		echo "|---|---|---|---|"
		printf '%s\n' "${IDLE_LINES[@]}"
	fi
	[ "$FAILED" = 0 ] || { echo; echo "$FAILED run(s) failed or lost messages; see the lost column and runs (failed)."; }
} | tee "$TMP/report.md"

if [ -n "$OUT" ]; then
	mkdir -p "$OUT"
	cp "$TMP/results.jsonl" "$TMP/report.md" "$OUT/"
	cp "$TMP"/*.log "$OUT/" 2>/dev/null || true
	log "results, report and logs kept in $OUT"
fi
