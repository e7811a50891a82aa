#!/usr/bin/env bash
# plugin-bench.sh: what HTTP plugins cost the broker, end to end, as ratios
# to the same broker without plugins measured in the same run
# (docs/benchmarks.md, "Plugins").
#
# Everything runs on loopback: mqttd built from this repository and started
# as a process with one config file per variant, the bench plugin
# (mqttbench plugin) as the HTTP plugin, and mqttbench as the load.
# Every run gets a fresh broker and a fresh plugin; variants are
# interleaved (round 1: every variant, round 2: every variant in reverse
# order, ...) so that drifts of the machine hit all of them alike, and each
# variant's run is compared with the baseline's run of the same round.
#
# Load variants (mqttbench pairs, 10 publishers -> 10 subscribers, 64-byte
# payloads, closed loop, QoS 0 and QoS 1):
#   none         no plugins (the baseline)
#   topic        an HTTP topic plugin (topic-check on), answering allow with
#                cache_ttl 60, so after the first message of each client the
#                broker answers from its cache; configured the way an
#                operator would write it: no events key (the plugin's
#                manifest asks for none)
#   topic-narrow the same with `events: [broker_pre_start]`, which keeps the
#                broker from building events for the plugin
#   events       an HTTP plugin subscribed to broker_message_received (one
#                event per PUBLISH), no topic check: events/s delivered to
#                the plugin, batches, drops (broker /metrics)
# and, with events, the same two (none, events) at a fixed rate of
# --events-rate msg/s in total, QoS 0: does the plugin get every event at
# that rate, and what does each cost the broker (µs of CPU per delivery)?
# Storms (1,000 clients send CONNECT at once; auth plugin answering in
# 20 ms):
#   distinct ids, cache_ttl 60 | one id, cache_ttl 0 (only the collapse of
#   identical concurrent calls helps) | one id, cache_ttl 60
#
# Usage: scripts/plugin-bench.sh [options]
#   --rounds N         rounds of every variant (default 3)
#   --duration D       measured publishing time per run (default 8s)
#   --warmup D         unmeasured publishing before it (default 1s; warms the
#                      decision cache)
#   --variants LIST    comma-separated subset of topic,topic-narrow,events
#                      (the baseline always runs)
#   --qos LIST         QoS levels of the load runs (default 0,1)
#   --pubs N           publisher/subscriber pairs (default 10)
#   --events-rate R    total msg/s of the fixed-rate events case (default
#                      110000; 0 = skip it)
#   --storm N          clients per storm (default 1000; 0 = no storms)
#   --storm-runs N     runs of each storm case (default 3)
#   --auth-delay D     the auth plugin's delay (default 20ms)
#   --go-bench         also run the Go benchmarks of internal/hooks and
#                      internal/webhook (about a minute more)
#   --port-base P      first loopback port used (default 21883: MQTT P, admin
#                      P+1, plugin P+2)
#   --quiet-wait S     before each run wait up to S seconds for other
#                      processes to go quiet (default 20; 0 = don't wait)
#   --max-other PCT    leave run pairs during which other processes used more
#                      than PCT % CPU out of the ratios (default 0 = keep all)
#   --out DIR          keep results.jsonl, report.md and the logs in DIR
#   --profile          CPU profiles of the broker (admin.pprof) and of the
#                      bench plugin over each load run's measured part, as
#                      prof-*.pb.gz in the --out directory (go tool pprof)
#   --baseline REV     also run every load variant on mqttd built from git
#                      revision REV (from `git archive`; the work tree stays
#                      untouched), each right after the same variant on this
#                      tree (the other way round in even rounds); the report
#                      gets a second table for REV, its ratios to REV's own
#                      baseline, so both trees are measured in the same run
#   --baseline-bin F   with --baseline: run the mqttd binary F as REV instead
#                      of building it (REV with a local patch, say)
#   --validate-first N the bench plugin's -validate-first for the events
#                      variant (default 10): its first N batches are checked
#                      against api/openapi.yaml before it answers, about
#                      0.1-0.4 s per batch of 1,000 events on this 2-core
#                      machine, during which that batch's lane waits
#   --validate-every K its -validate-every (default 512): one batch in K
#                      after those, at random
set -euo pipefail

ROUNDS=3
DURATION=8s
WARMUP=1s
VARIANTS=topic,topic-narrow,events
QOS_LIST=0,1
PUBS=10
EVENTS_RATE=110000
STORM=1000
STORM_RUNS=3
AUTH_DELAY=20ms
GO_BENCH=0
PORT_BASE=21883
QUIET_WAIT=20
MAX_OTHER=0
OUT=""
PROFILE=0
BASELINE=""
BASELINE_BIN=""
VALIDATE_FIRST=10
VALIDATE_EVERY=512

die() { echo "plugin-bench: $*" >&2; exit 2; }
log() { echo "plugin-bench: $*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--duration) DURATION=${2:?}; shift 2 ;;
	--warmup) WARMUP=${2:?}; shift 2 ;;
	--variants) VARIANTS=${2?}; shift 2 ;;
	--qos) QOS_LIST=${2:?}; shift 2 ;;
	--pubs) PUBS=${2:?}; shift 2 ;;
	--events-rate) EVENTS_RATE=${2:?}; shift 2 ;;
	--storm) STORM=${2:?}; shift 2 ;;
	--storm-runs) STORM_RUNS=${2:?}; shift 2 ;;
	--auth-delay) AUTH_DELAY=${2:?}; shift 2 ;;
	--go-bench) GO_BENCH=1; shift ;;
	--port-base) PORT_BASE=${2:?}; shift 2 ;;
	--quiet-wait) QUIET_WAIT=${2:?}; shift 2 ;;
	--max-other) MAX_OTHER=${2:?}; shift 2 ;;
	--out) OUT=${2:?}; shift 2 ;;
	--profile) PROFILE=1; shift ;;
	--baseline) BASELINE=${2:?}; shift 2 ;;
	--baseline-bin) BASELINE_BIN=${2:?}; shift 2 ;;
	--validate-first) VALIDATE_FIRST=${2:?}; shift 2 ;;
	--validate-every) VALIDATE_EVERY=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$STORM" =~ ^[0-9]+$ && "$STORM_RUNS" =~ ^[1-9][0-9]*$ ]] || die "--storm and --storm-runs must be integers"
[[ "$EVENTS_RATE" =~ ^[0-9]+$ ]] || die "--events-rate must be an integer (msg/s)"
if ! [[ "$PORT_BASE" =~ ^[0-9]+$ ]] || [ "$PORT_BASE" -lt 1024 ] || [ "$PORT_BASE" -gt 65530 ]; then
	die "--port-base must be 1024..65530"
fi
command -v go >/dev/null || die "go is needed to build mqttbench and mqttd"

IFS=, read -r -a WANT <<<"$VARIANTS"
LOAD_VARIANTS=(none)
for v in "${WANT[@]}"; do
	case "$v" in
	topic | topic-narrow | events) LOAD_VARIANTS+=("$v") ;;
	none | "") ;;
	*) die "unknown variant $v (want topic, topic-narrow, events)" ;;
	esac
done
IFS=, read -r -a QOSES <<<"$QOS_LIST"
for q in "${QOSES[@]}"; do [[ "$q" =~ ^[012]$ ]] || die "--qos: $q is not 0, 1 or 2"; done

declare -A LABEL=([none]="no plugins" [topic]="topic plugin" [topic-narrow]="topic plugin, events narrowed" [events]="events on")

REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqttd-plugin-bench.XXXXXX")
MQTT_PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
PLUGIN_PORT=$((PORT_BASE + 2))
PLUGIN_URL="http://127.0.0.1:$PLUGIN_PORT"
METRICS_URL="http://127.0.0.1:$ADMIN_PORT/metrics"
BPID=""
PPID_=""

stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
stop_all() {
	stop_pid "$BPID"
	BPID=""
	stop_pid "$PPID_"
	PPID_=""
}
cleanup() {
	stop_all
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$MQTT_PORT" "$ADMIN_PORT" "$PLUGIN_PORT"; do
	port_free "$p" || die "port $p is already in use on 127.0.0.1 (choose another --port-base)"
done

log "building mqttd and mqttbench"
(cd "$REPO" && go build -o "$TMP/mqttd" ./cmd/mqttd && go build -o "$TMP/mqttbench" ./tools/mqttbench) ||
	die "build failed"
REV="$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo "working tree")"
BUILDS=(cur)
declare -A BIN=([cur]="$TMP/mqttd")
if [ -n "$BASELINE" ]; then
	BASE_REV=$(cd "$REPO" && git rev-parse --short --verify "$BASELINE^{commit}" 2>/dev/null) ||
		die "--baseline $BASELINE is not a commit of this repository"
	if [ -n "$BASELINE_BIN" ]; then
		[ -x "$BASELINE_BIN" ] || die "--baseline-bin $BASELINE_BIN is not an executable"
		cp "$BASELINE_BIN" "$TMP/mqttd-base"
		BASE_REV="$BASE_REV ($BASELINE_BIN)"
	else
		log "building mqttd at $BASE_REV (--baseline)"
		mkdir -p "$TMP/base"
		{ (cd "$REPO" && git archive "$BASE_REV") | tar -x -C "$TMP/base" &&
			(cd "$TMP/base" && go build -o "$TMP/mqttd-base" ./cmd/mqttd); } >"$TMP/base-build.log" 2>&1 ||
			die "mqttd at $BASE_REV does not build (see $TMP/base-build.log)"
	fi
	BIN[base]="$TMP/mqttd-base"
	BUILDS+=(base)
fi

# start_plugin ARGS...: a fresh bench plugin on PLUGIN_PORT.
start_plugin() {
	"$TMP/mqttbench" plugin -listen "127.0.0.1:$PLUGIN_PORT" -json "$@" >>"$TMP/plugin.out" 2>>"$TMP/plugin.log" &
	PPID_=$!
	for _ in $(seq 100); do
		kill -0 "$PPID_" 2>/dev/null || { log "the bench plugin exited at start-up"; PPID_=""; return 1; }
		port_free "$PLUGIN_PORT" || return 0
		sleep 0.05
	done
	log "the bench plugin did not listen within 5 s"
	return 1
}

# write_config VARIANT FILE: the broker's config for a variant.
write_config() {
	{
		printf 'listeners:\n  default: {type: tcp, bind: "127.0.0.1:%s"}\n' "$MQTT_PORT"
		printf 'admin: {bind: "127.0.0.1:%s", pprof: %s}\nsys-interval: 0s\n' "$ADMIN_PORT" "$([ "$PROFILE" = 1 ] && echo true || echo false)"
		case "$1" in
		none) ;;
		topic)
			printf 'plugins:\n  bench: {url: "%s"}\n' "$PLUGIN_URL"
			printf 'topic-check: {enable: true, plugins: [bench]}\n'
			;;
		topic-narrow)
			printf 'plugins:\n  bench: {url: "%s", events: [broker_pre_start]}\n' "$PLUGIN_URL"
			printf 'topic-check: {enable: true, plugins: [bench]}\n'
			;;
		events)
			printf 'plugins:\n  bench: {url: "%s", events: [broker_message_received]}\n' "$PLUGIN_URL"
			;;
		auth)
			printf 'plugins:\n  bench: {url: "%s"}\n' "$PLUGIN_URL"
			printf 'auth: {allow-anonymous: false, plugins: [bench]}\n'
			;;
		esac
	} >"$2"
}

# start_broker CONFIG [BUILD]: a fresh mqttd (this tree's, or --baseline's
# for BUILD base); sets BPID once MQTT and admin listen.
start_broker() {
	# From a fresh working directory: the broker's state (data/store by
	# default) stays out of the checkout, and no run sees an earlier one's.
	local wd
	wd=$(mktemp -d "$TMP/wd.XXXXXX")
	(cd "$wd" && exec "${BIN[${2:-cur}]}" --config "$1") >>"$TMP/mqttd.log" 2>&1 &
	BPID=$!
	for _ in $(seq 100); do
		if ! kill -0 "$BPID" 2>/dev/null; then
			log "mqttd exited at start-up; last log lines:"
			tail -5 "$TMP/mqttd.log" >&2
			BPID=""
			return 1
		fi
		if ! port_free "$MQTT_PORT" && ! port_free "$ADMIN_PORT"; then return 0; fi
		sleep 0.05
	done
	log "mqttd did not listen within 5 s"
	return 1
}

# profile_broker FILE: the broker's CPU profile over the measured part of
# a run (from the end of the warm-up to a second before the end).
profile_broker() {
	local secs
	secs=$(awk -v d="${DURATION%s}" 'BEGIN{s=int(d)-1; print (s<1?1:s)}')
	sleep "$(awk -v w="${WARMUP%s}" 'BEGIN{print w+0.5}')"
	curl -fsS -o "$1" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$secs" 2>>"$TMP/mqttbench.log" ||
		log "no broker profile for $1"
}

cpu_busy() { awk '/^cpu /{print $2+$3+$4+$9; exit}' /proc/stat; }
# wait_quiet: as in compare.sh, wait until other processes use under a
# quarter of a core, or give up after --quiet-wait seconds.
wait_quiet() {
	local waited=0 a b busy
	[ "$QUIET_WAIT" = 0 ] && return 0
	while :; do
		a=$(cpu_busy)
		sleep 1
		b=$(cpu_busy)
		busy=$((b - a))
		[ "$busy" -lt 25 ] && return 0
		if [ "$waited" -ge "$QUIET_WAIT" ]; then
			log "machine still busy (${busy}% of a core used by other processes); measuring anyway"
			return 0
		fi
		waited=$((waited + 1))
	done
}

RESULTS="$TMP/results.jsonl"
: >"$RESULTS"
declare -A RESULTS_OF=([cur]="$RESULTS" [base]="$TMP/results-base.jsonl")
[ -n "$BASELINE" ] && : >"${RESULTS_OF[base]}"
FAILED=0
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
UPTIME_START=$(uptime)

# record WHAT LINE RC [FILE]: keep a result line (in FILE, default
# results.jsonl) and say how it went.
record() {
	local what=$1 line=$2 rc=$3
	if [ -z "$line" ]; then
		log "$what: no result (exit $rc; see mqttbench.log)"
		FAILED=$((FAILED + 1))
		return
	fi
	echo "$line" >>"${4:-$RESULTS}"
	local status=ok
	if [ "$rc" != 0 ]; then
		status="FAILED (exit $rc): $(grep -o '"errors":\[[^]]*\]' <<<"$line" || true)"
		FAILED=$((FAILED + 1))
	fi
	local rate evs last
	rate=$(grep -o '"delivered_per_s":[0-9.e+]*' <<<"$line" | cut -d: -f2 || true)
	evs=$(grep -o '"events_per_s":[0-9.e+]*' <<<"$line" | cut -d: -f2 || true)
	last=$(grep -o '"last_connack_ms":[0-9.e+]*' <<<"$line" | cut -d: -f2 || true)
	if [ -n "$last" ]; then
		log "$what: last CONNACK after $(printf '%.0f' "$last") ms, $status"
	else
		log "$what: $(printf '%.0f' "${rate:-0}") del/s, plugin $(printf '%.0f' "${evs:-0}") events/s, $status"
	fi
}

log "load: variants ${LOAD_VARIANTS[*]}, QoS ${QOSES[*]}, $ROUNDS round(s) of $DURATION after $WARMUP warm-up"
for round in $(seq "$ROUNDS"); do
	order=("${LOAD_VARIANTS[@]}")
	if [ $((round % 2)) = 0 ]; then
		order=()
		for ((i = ${#LOAD_VARIANTS[@]} - 1; i >= 0; i--)); do order+=("${LOAD_VARIANTS[$i]}"); done
	fi
	cases=()
	for q in "${QOSES[@]}"; do cases+=("$q:0"); done
	if [ "$EVENTS_RATE" -gt 0 ] && [[ " ${LOAD_VARIANTS[*]} " == *" events "* ]]; then
		cases+=("0:$EVENTS_RATE")
	fi
	for qr in "${cases[@]}"; do
		q=${qr%%:*} rate=${qr#*:}
		title="$PUBS→$PUBS pairs QoS $q"
		rflags=()
		if [ "$rate" != 0 ]; then
			title="$title at $((rate / 1000)) k msg/s"
			rflags=(-rate "$(awk -v r="$rate" -v n="$PUBS" 'BEGIN{print r/n}')")
		fi
		builds=("${BUILDS[@]}")
		if [ $((round % 2)) = 0 ] && [ ${#BUILDS[@]} = 2 ]; then builds=(base cur); fi
		for v in "${order[@]}"; do
			# The fixed-rate case is about events only.
			[ "$rate" != 0 ] && [ "$v" != none ] && [ "$v" != events ] && continue
			write_config "$v" "$TMP/$v.yaml"
			for build in "${builds[@]}"; do
				wait_quiet
				pflags=(-topic-cache-ttl 60)
				[ "$v" = events ] && pflags+=(-manifest-events broker_message_received -validate-first "$VALIDATE_FIRST" -validate-every "$VALIDATE_EVERY")
				prof="$TMP/prof-$v-q$q-r$round"
				[ "$build" = base ] && prof="$TMP/prof-base-$v-q$q-r$round"
				[ "$rate" != 0 ] && prof="$prof-rate"
				[ "$PROFILE" = 1 ] && pflags+=(-cpuprofile "$prof-plugin.pb.gz")
				start_plugin "${pflags[@]}" || { FAILED=$((FAILED + 1)); stop_all; continue; }
				start_broker "$TMP/$v.yaml" "$build" || { FAILED=$((FAILED + 1)); stop_all; continue; }
				[ "$PROFILE" = 1 ] && profile_broker "$prof-broker.pb.gz" &
				rc=0
				line=$("$TMP/mqttbench" load -json -broker "127.0.0.1:$MQTT_PORT" -pid "$BPID" -plugin "$PLUGIN_URL" \
					-metrics "$METRICS_URL" -scenario pairs -pubs "$PUBS" -qos "$q" -size 64 -duration "$DURATION" \
					-warmup "$WARMUP" "${rflags[@]}" -label "${LABEL[$v]}" -case "$title" 2>>"$TMP/mqttbench.log") || rc=$?
				stop_all
				what="round $round, $title, ${LABEL[$v]}"
				[ "$build" = base ] && what="$what @$BASE_REV"
				record "$what" "$line" "$rc" "${RESULTS_OF[$build]}"
			done
		done
	done
done

if [ "$STORM" -gt 0 ]; then
	log "storms: $STORM clients, auth plugin answering in $AUTH_DELAY, $STORM_RUNS run(s) per case"
	write_config auth "$TMP/auth.yaml"
	for run in $(seq "$STORM_RUNS"); do
		for c in distinct same-nocache same-cached; do
			case "$c" in
			distinct) title="distinct ids, cache_ttl 60"; ttl=60; sflags=() ;;
			same-nocache) title="one id, cache_ttl 0"; ttl=0; sflags=(-same-id) ;;
			same-cached) title="one id, cache_ttl 60"; ttl=60; sflags=(-same-id) ;;
			esac
			wait_quiet
			start_plugin -auth-delay "$AUTH_DELAY" -auth-cache-ttl "$ttl" || { FAILED=$((FAILED + 1)); stop_all; continue; }
			start_broker "$TMP/auth.yaml" || { FAILED=$((FAILED + 1)); stop_all; continue; }
			rc=0
			line=$("$TMP/mqttbench" storm -json -broker "127.0.0.1:$MQTT_PORT" -conns "$STORM" \
				-username bench -password "s3cret" -plugin "$PLUGIN_URL" -metrics "$METRICS_URL" \
				-case "$title" "${sflags[@]}" 2>>"$TMP/mqttbench.log") || rc=$?
			stop_all
			record "storm $run, $title" "$line" "$rc"
		done
	done
fi
UPTIME_END=$(uptime)

GO_BENCH_OUT=""
if [ "$GO_BENCH" = 1 ]; then
	log "Go benchmarks of internal/hooks and internal/webhook"
	wait_quiet
	GO_BENCH_OUT=$(
		cd "$REPO"
		go test -run '^$' -bench . -benchtime=1s ./internal/hooks/ ./internal/webhook/... 2>&1 |
			grep -E '^(Benchmark|ok|FAIL|pkg:)' || true
	)
fi

cpu_model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
	echo "### Plugins, $STARTED"
	echo
	echo "- machine: $(nproc) CPUs ($cpu_model), kernel $(uname -r), $(go version | awk '{print $3}'); mqttd $REV"
	echo "- uptime at start: ${UPTIME_START# }"
	echo "- uptime at end:   ${UPTIME_END# }"
	echo "- bench plugin (events variant): -validate-first $VALIDATE_FIRST -validate-every $VALIDATE_EVERY"
	echo "- load: mqttbench pairs $PUBS→$PUBS, 64-byte payloads, closed loop (window 256), $DURATION measured after $WARMUP warm-up, $ROUNDS round(s), variants interleaved, fresh broker and plugin per run"
	echo
	"$TMP/mqttbench" report -baseline "${LABEL[none]}" -max-other "$MAX_OTHER" "$RESULTS"
	if [ -n "$BASELINE" ]; then
		echo
		echo "mqttd at $BASE_REV (--baseline $BASELINE), each run right beside this tree's run of the same variant:"
		echo
		"$TMP/mqttbench" report -baseline "${LABEL[none]}" -max-other "$MAX_OTHER" "${RESULTS_OF[base]}"
	fi
	if [ -n "$GO_BENCH_OUT" ]; then
		echo
		echo '```'
		echo "$GO_BENCH_OUT"
		echo '```'
	fi
	[ "$FAILED" = 0 ] || { echo; echo "$FAILED run(s) failed; see results.jsonl and the logs."; }
} | tee "$TMP/report.md"

if [ -n "$OUT" ]; then
	mkdir -p "$OUT"
	cp "$TMP/results.jsonl" "$TMP/report.md" "$OUT/"
	[ -n "$BASELINE" ] && cp "${RESULTS_OF[base]}" "$OUT/"
	cp "$TMP"/*.log "$TMP/plugin.out" "$OUT/" 2>/dev/null || true
	cp "$TMP"/prof-*.pb.gz "$OUT/" 2>/dev/null || true
	log "results, report and logs kept in $OUT"
fi
[ "$FAILED" = 0 ]
