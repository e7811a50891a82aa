#!/usr/bin/env bash
# persist-bench.sh: what persistence costs the publish path, as ratios to the
# same broker with storage.type memory measured in the same run
# (docs/benchmarks.md, "Persistence").
#
# mqttd built from this repository runs as a process, fresh for every run
# (a fresh store directory too), with one config per variant; mqttbench load
# is the load (pairs: 10 publishers -> 10 subscribers, 64-byte payloads,
# closed loop). Variants are interleaved (round 1 in order, round 2 in
# reverse, ...) so a drift of the shared machine hits all of them alike;
# the summary gives medians over the rounds and each ratio to memory.
#
# Cases:
#   qos0        QoS 0, clean sessions: pebble must cost nothing (>= 0.97x)
#   qos1        QoS 1, clean sessions: the same
#   qos1-pers   QoS 1, persistent subscribers (-persistent-subs): with
#               pebble every delivery is committed (durability sync: fsync,
#               group commit) before the publisher's PUBACK; p99
#               publish-to-PUBACK latency reported
# Variants: memory (storage.type memory), pebble (storage.type pebble,
# durability sync).
#
# Usage: scripts/persist-bench.sh [--rounds N] [--duration D] [--cases LIST] [--out DIR] [--src DIR] [--base DIR]
#   --src DIR   build mqttd from another checkout (e.g. `git archive main`);
#               mqttbench always comes from this one
#   --base DIR  also build mqttd from DIR (e.g. `git archive main`) and run
#               its memory and pebble variants (labelled base-memory,
#               base-pebble) interleaved with the others in the same
#               rounds: a change's ratio and its base's from one run
# Restart time, RSS and disk bytes per queued message:
#   MQTTD_BENCH_RESTART=1 go test -run TestBenchRestartLargeStore -v -timeout 30m ./cmd/mqttd
set -euo pipefail

rounds=3 duration=8s cases="qos0,qos1,qos1-pers" out="" src="" base=""
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds=$2; shift 2 ;;
	--duration) duration=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--src) src=$2; shift 2 ;;
	--base) base=$2; shift 2 ;;
	*) echo "persist-bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
command -v jq >/dev/null || { echo "persist-bench.sh: needs jq" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=${out:-$(mktemp -d /tmp/persist-bench.XXXXXX)}
mkdir -p "$work"
src=${src:-$root}
(cd "$src" && go build -o "$work/mqttd" ./cmd/mqttd)
[ -n "$base" ] && (cd "$base" && go build -o "$work/mqttd-base" ./cmd/mqttd)
(cd "$root" && go build -o "$work/mqttbench" ./tools/mqttbench)
results="$work/results.jsonl"
: >"$results"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

broker_pid=""
stop_broker() {
	if [ -n "$broker_pid" ]; then
		kill -TERM "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
		broker_pid=""
	fi
}
trap stop_broker EXIT

# start_broker VARIANT: a fresh broker (and store) on free ports.
start_broker() {
	local variant=$1 dir port admin storage bin=$work/mqttd
	dir=$(mktemp -d "$work/run.XXXXXX")
	port=$(free_port) admin=$(free_port)
	case "$variant" in
	base-*) bin=$work/mqttd-base ;;
	esac
	case "${variant#base-}" in
	memory) storage="storage: {type: memory}" ;;
	pebble) storage="storage: {type: pebble, dir: $dir/store, durability: sync}" ;;
	esac
	printf 'listeners:\n  default: {bind: "127.0.0.1:%s"}\nadmin: {bind: "127.0.0.1:%s"}\nsys-interval: 0\nlogging: {level: warn}\n%s\n' \
		"$port" "$admin" "$storage" >"$dir/mqttd.yaml"
	"$bin" --config "$dir/mqttd.yaml" >"$dir/log" 2>&1 &
	broker_pid=$!
	broker_addr="127.0.0.1:$port"
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && return 0
		sleep 0.05
	done
	echo "persist-bench.sh: $variant broker not ready" >&2
	cat "$dir/log" >&2
	exit 1
}

run_case() {
	local case=$1 variant=$2 round=$3 args
	case "$case" in
	qos0) args=(-qos 0) ;;
	qos1) args=(-qos 1) ;;
	qos1-pers) args=(-qos 1 -persistent-subs) ;;
	*) echo "persist-bench.sh: unknown case $case" >&2; exit 2 ;;
	esac
	start_broker "$variant"
	"$work/mqttbench" load -broker "$broker_addr" -pid "$broker_pid" -scenario pairs -pubs 10 "${args[@]}" \
		-duration "$duration" -warmup 1s -drain 5s -json -case "$case" -label "$variant" \
		| jq -c --arg round "$round" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '. + {round: ($round|tonumber), loadavg: $load}' >>"$results"
	stop_broker
}

IFS=, read -r -a case_list <<<"$cases"
for round in $(seq "$rounds"); do
	variants=(memory pebble)
	[ -n "$base" ] && variants=(memory pebble base-memory base-pebble)
	if [ $((round % 2)) -eq 0 ]; then
		rev=()
		for ((i = ${#variants[@]} - 1; i >= 0; i--)); do rev+=("${variants[i]}"); done
		variants=("${rev[@]}")
	fi
	for c in "${case_list[@]}"; do
		for v in "${variants[@]}"; do
			run_case "$c" "$v" "$round"
		done
	done
done

echo "mqttd from $src${base:+ (base: $base)}, $(nproc) cores, $rounds rounds of $duration; results in $results"
for prefix in "" ${base:+base-}; do
	[ -n "$prefix" ] && echo "base (mqttd from $base):"
	jq -rs --arg pre "$prefix" '
  def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  map(select(.label | ltrimstr($pre) | IN("memory", "pebble"))) | map(select(.label | startswith($pre))) |
  group_by(.case) | .[] | . as $runs | ($runs[0].case) as $c |
  [ "memory", "pebble" ] | map(($pre + .) as $v | [$runs[] | select(.label == $v)]) as [$m, $p] |
  ($m | map(.delivered_per_s) | median) as $mr | ($p | map(.delivered_per_s) | median) as $pr |
  "\($c): memory \($mr|floor) msg/s, pebble \($pr|floor) msg/s, ratio \(($pr / $mr * 1000 | floor) / 1000)" +
  (if $c != "qos0" then "; ack p99 memory \($m | map(.ack_p99_us) | median | floor) µs, pebble \($p | map(.ack_p99_us) | median | floor) µs" else "" end) +
  "; not ok runs \([$runs[] | select(.ok | not)] | length); load \([$runs[].loadavg] | join(" | "))"
' "$results"
done
