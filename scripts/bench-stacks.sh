#!/usr/bin/env bash
# What a stack costs: unwind.c's leaf (main -> outer -> middle -> relay in librelay.so ->
# leaf, all built with frame pointers, so that every method sees the whole stack) called by
# one thread as fast as it can, traced
#   - without a stack (the baseline a stack adds to),
#   - with `stack: { unwind: fp }` (walked by frame pointers in the kernel),
#   - with `stack: { unwind: dwarf, bytes: 8192 }` and `bytes: 16384` (copied at entry,
#     unwound in userspace by the unwind tables),
#   - by bpftrace's `uprobe:...:leaf { @[ustack] = count(); }` (frame pointers, in the kernel),
# and not at all; alternating in each round. Per configuration: the BPF run time per call
# (kernel.bpf_stats_enabled; spanprobe's entry and return programs together), what tracing
# added to each call against the unprobed run of the round, and the tracer's own CPU time per
# call (from when it has attached until the calls have ended and their events are drained).
# Every spanprobe run has a 64 MiB ring buffer: a window takes its bytes and a page of it
# until read, and at this rate the default 8 MiB fills (what is lost is in the table).
# Prints a Markdown table. Usage: scripts/bench-stacks.sh SPANPROBE [ROUNDS] [CALLS]
set -euo pipefail
spanprobe=$1
rounds=${2:-5}
calls=${3:-200000}
cd "$(dirname "$0")/.."
log() { printf 'bench-stacks: %s\n' "$*" >&2; }
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bpf_stats_workdir

build_unwind "$work"
config() { # NAME STACK: leaf with `stack: STACK` (nothing for none) into NAME.yaml
  cat > "$work/$1.yaml" <<YAML
exporter: { stdout: { format: json, file: /dev/null } }
limits: { ring_buffer_size: 67108864 }
probes:
  - binary: $work/unwind
    functions:
      - { symbol: leaf${2:+, stack: $2} }
YAML
}
config none ''
config fp '{ unwind: fp }'
config dwarf8 '{ unwind: dwarf, bytes: 8192 }'
config dwarf16 '{ unwind: dwarf, bytes: 16384 }'

per_call() { # ns per call, from the "calls N in S s" line of file OUT
  awk '/^calls / { printf "%.1f", $4 * 1e9 / $2 }' "$1"
}
per_load_call() { # TICKS of CPU time per call, in ns
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$calls" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }'
}

sysctl -q kernel.bpf_stats_enabled=1
hows=(unprobed none fp dwarf8 dwarf16 bpftrace)
declare -A bpf call cpu lost
for round in $(seq "$rounds"); do
  for how in "${hows[@]}"; do
    log "$how ($round/$rounds)"
    load=("$work/unwind" "$calls")
    if [ "$how" = unprobed ]; then
      "${load[@]}" > "$work/out"
      call[$how]+="$(per_call "$work/out") "
      continue
    fi
    # The tracer attaches to the binary, in every process, and runs apart from the load.
    if [ "$how" = bpftrace ]; then
      bpftrace -e "uprobe:$work/unwind:leaf { @[ustack] = count(); }" > "$work/log" 2>&1 &
      tracer=$! pattern='.*' ready='Attaching'
    else
      "$spanprobe" run -c "$work/$how.yaml" > /dev/null 2> "$work/log" &
      tracer=$! pattern=$SPANPROBE_PROGRAMS ready='attached'
    fi
    wait_for "$work/log" "$ready"
    # bpftrace says it is attaching before it has.
    sleep 1
    attached=$(ticks "$tracer")
    "${load[@]}" > "$work/out"
    bpf[$how]+="$(bpf_ns "$pattern") "
    sleep 1
    cpu[$how]+="$(per_load_call $(($(ticks "$tracer") - attached))) "
    kill -INT "$tracer"
    wait "$tracer" || true
    call[$how]+="$(per_call "$work/out") "
    if [ "$how" != bpftrace ]; then
      windows=$(grep -o 'stack_windows_lost=[0-9]*' "$work/log" | cut -d= -f2 || true)
      spans=$(grep -o ' lost=[0-9]*' "$work/log" | cut -d= -f2)
      lost[$how]+="$(((${windows:-0} + spans) * 100 / calls)) "
    fi
  done
done
declare -A bpf_median call_median cpu_median lost_median
for how in "${hows[@]}"; do
  log "$how: bpf ns ${bpf[$how]:-}, ns per call ${call[$how]}, tracer ns per call ${cpu[$how]:-}, % lost ${lost[$how]:-}"
  bpf_median[$how]=$(tr ' ' '\n' <<<"${bpf[$how]:-}" | grep . | median || true)
  call_median[$how]=$(tr ' ' '\n' <<<"${call[$how]}" | grep . | median)
  cpu_median[$how]=$(tr ' ' '\n' <<<"${cpu[$how]:-}" | grep . | median || true)
  lost_median[$how]=$(tr ' ' '\n' <<<"${lost[$how]:-}" | grep . | median || true)
done
base=${call_median[unprobed]}
echo "| \`leaf\`, 6 frames deep, $calls calls | BPF ns per call | × no stack | added ns per call | × frame pointers' | tracer's CPU ns per call | × frame pointers' | % of spans or stacks lost |"
echo "|---|---|---|---|---|---|---|---|"
added_fp=$(minus "${call_median[fp]}" "$base")
row() { # LABEL HOW
  local added
  added=$(minus "${call_median[$2]}" "$base")
  echo "| $1 | ${bpf_median[$2]:--} | $(ratio "${bpf_median[$2]:-0}" "${bpf_median[none]}") | $added | $(ratio "$added" "$added_fp") | ${cpu_median[$2]:--} | $(ratio "${cpu_median[$2]:-0}" "${cpu_median[fp]}") | ${lost_median[$2]:--} |"
}
row "spanprobe, no stack" none
row "spanprobe, \`unwind: fp\`" fp
row "spanprobe, \`unwind: dwarf\`, 8 KiB" dwarf8
row "spanprobe, \`unwind: dwarf\`, 16 KiB" dwarf16
row "bpftrace, \`@[ustack] = count()\`" bpftrace
