#!/usr/bin/env bash
# What deciding in the kernel saves: calls.c's `work(x)` under load, traced
#   - exporting every call (the baseline the filters save against),
#   - with `when: { x: "== 42" }` (every call but one left out at entry),
#   - with `min_duration: 1h` (work calls no probed function: every call left out at return),
#   - by bpftrace's equivalent filter, `uprobe:...:work /arg0 == 42/ { @[tid] = count(); }`,
# and not at all; alternating in each round. Per configuration: the BPF run time per call
# (kernel.bpf_stats_enabled; spanprobe's entry and return programs together), the time each
# call of the load took and what tracing added to it against the unprobed run of the round,
# and the tracer's own CPU time per call (its process, from when it has attached until the
# load has ended and its events are drained).
# Then the most calls/s two threads make with no call lost, exporting every call and with 1.2 %
# of them matching (`when` on x's low byte below 3), over a ladder of offered rates.
# Prints Markdown tables. Usage: scripts/bench-when.sh SPANPROBE [ROUNDS]
set -euo pipefail
spanprobe=$1
rounds=${2:-5}
cd "$(dirname "$0")/.."
log() { printf 'bench-when: %s\n' "$*" >&2; }
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bpf_stats_workdir

gcc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -pthread \
  -o "$work/calls" tests/programs/calls.c
config() { # NAME ARGS EXTRA: work with ARGS and EXTRA (YAML flow fields) into NAME.yaml
  cat > "$work/$1.yaml" <<YAML
exporter: { stdout: { format: json, file: /dev/null } }
probes:
  - binary: $work/calls
    functions:
      - { symbol: work, args: [$2], return: { type: i64 }$3 }
YAML
}
x='{ index: 0, name: x, type: i64 }'
config export "$x" ''
config when "$x" ', when: { x: "== 42" }'
config short "$x" ', min_duration: 1h'
config match "{ index: 0, name: low, type: u8 }" ', when: { low: "< 3" }'
filter="uprobe:$work/calls:work /arg0 == 42/ { @[tid] = count(); }"

per_call() { # ns per call of the load, from its "load N calls in S s R calls/s" line
  awk '/^load / { printf "%.1f", 1e9 / $(NF - 1) }' "$1"
}

per_load_call() { # TICKS of CPU time per call of the load in file OUT, in ns
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" '/^load / { printf "%.0f", t * 1e9 / hz / $2 }' "$2"
}

sysctl -q kernel.bpf_stats_enabled=1
hows=(unprobed export when short bpftrace)
declare -A bpf call cpu
for round in $(seq "$rounds"); do
  for how in "${hows[@]}"; do
    log "$how ($round/$rounds)"
    load=("$work/calls" load 1 5)
    if [ "$how" = unprobed ]; then
      "${load[@]}" > "$work/out"
      call[$how]+="$(per_call "$work/out") "
      continue
    fi
    # The tracer attaches to the binary, in every process, and runs apart from the load.
    if [ "$how" = bpftrace ]; then
      bpftrace -e "$filter" > "$work/log" 2>&1 &
      tracer=$! pattern='.*' ready='Attaching'
    else
      "$spanprobe" run -c "$work/$how.yaml" > /dev/null 2> "$work/log" &
      tracer=$! pattern=$SPANPROBE_PROGRAMS ready='attached'
    fi
    wait_for "$work/log" "$ready"
    # Loading and attaching (the verifier's time included) is not the calls'.
    attached=$(ticks "$tracer")
    "${load[@]}" > "$work/out" &
    sleep 4
    bpf[$how]+="$(bpf_ns "$pattern") "
    wait $!
    sleep 1
    cpu[$how]+="$(per_load_call $(($(ticks "$tracer") - attached)) "$work/out") "
    kill -INT "$tracer"
    wait "$tracer" || true
    call[$how]+="$(per_call "$work/out") "
  done
done
declare -A bpf_median call_median cpu_median
for how in "${hows[@]}"; do
  log "$how: bpf ns ${bpf[$how]:-}, ns per call ${call[$how]}, tracer ns per call ${cpu[$how]:-}"
  bpf_median[$how]=$(tr ' ' '\n' <<<"${bpf[$how]:-}" | grep . | median || true)
  call_median[$how]=$(tr ' ' '\n' <<<"${call[$how]}" | grep . | median)
  cpu_median[$how]=$(tr ' ' '\n' <<<"${cpu[$how]:-}" | grep . | median || true)
done
base=${call_median[unprobed]}
echo "| \`work(x)\`, one thread as fast as it can | BPF ns per call | × exporting every call | ns per call of the load | added by tracing | × bpftrace's added | tracer's CPU ns per call |"
echo "|---|---|---|---|---|---|---|"
added_bpftrace=$(minus "${call_median[bpftrace]}" "$base")
row() { # LABEL HOW
  local added
  added=$(minus "${call_median[$2]}" "$base")
  echo "| $1 | ${bpf_median[$2]:--} | $(ratio "${bpf_median[$2]:-0}" "${bpf_median[export]}") | ${call_median[$2]} | $added | $(ratio "$added" "$added_bpftrace") | ${cpu_median[$2]:--} |"
}
echo "| not traced | - | - | $base | 0 | - | - |"
row "spanprobe, every call exported" export
row "spanprobe, \`when: { x: \"== 42\" }\`" when
row "spanprobe, \`min_duration: 1h\` (left out at return)" short
row "bpftrace, \`/arg0 == 42/ { @[tid] = count(); }\`" bpftrace

# The most calls/s with none lost: offered rates climb until a run loses calls or the threads
# cannot keep up (they make fewer than 95 % of the calls offered).
echo
echo "| two threads, \`work(x)\` | offered calls/s | made calls/s | lost | exported |"
echo "|---|---|---|---|---|"
for how in export match; do
  label="every call exported"
  [ "$how" = match ] && label="\`when: { low: \"< 3\" }\` (1.2 % match)"
  for rate in 250000 500000 1000000 2000000 4000000 0; do
    log "$how at ${rate:-full} calls/s"
    "$spanprobe" run -c "$work/$how.yaml" -- "$work/calls" load 2 5 "$rate" > "$work/out" 2> "$work/log"
    made=$(awk '/^load / { print $(NF - 1) }' "$work/out")
    lost=$(grep -o ' lost=[0-9]*' "$work/log" | tail -1 | cut -d= -f2)
    exported=$(grep -o ' exported=[0-9]*' "$work/log" | tail -1 | cut -d= -f2)
    offered=$rate
    [ "$rate" = 0 ] && offered="as fast as they can"
    echo "| $label | $offered | $made | $lost | $exported |"
    if [ "$lost" != 0 ] || { [ "$rate" != 0 ] && awk -v m="$made" -v r="$rate" 'BEGIN { exit !(m < 0.95 * r) }'; }; then
      break
    fi
  done
done
