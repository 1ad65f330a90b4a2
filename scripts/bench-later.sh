#!/usr/bin/env bash
# What a target whose processes start after spanprobe costs each call: unwind.c's leaf called
# by one thread as fast as it can, traced
#   - by a `binary:` target (the programs built for what leaf's probe needs: the baseline),
#   - by an `executable:` target no process ran when spanprobe started (found through the exec
#     program as the load starts; the programs built for whatever its functions may need:
#     trace contexts, reads and keep rules at return, stacks),
# and not at all; alternating in each round. A one-call run of the program goes first each
# time, so that the measured run is of a file probed already, traced from its first call.
# Per configuration: the BPF run time per call (kernel.bpf_stats_enabled; entry and return
# together) and what tracing added to each call against the unprobed run of the round.
# Prints a Markdown table. Usage: scripts/bench-later.sh SPANPROBE [ROUNDS] [CALLS]
set -euo pipefail
spanprobe=$1
rounds=${2:-5}
calls=${3:-200000}
cd "$(dirname "$0")/.."
log() { printf 'bench-later: %s\n' "$*" >&2; }
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bpf_stats_workdir

build_unwind "$work"
config() { # NAME KEY: leaf of the program, named by KEY (binary or executable)
  cat > "$work/$1.yaml" <<YAML
exporter: { stdout: { format: json, file: /dev/null } }
limits: { ring_buffer_size: 67108864 }
probes:
  - $2: $work/unwind
    functions:
      - { symbol: leaf }
YAML
}
config binary binary
config waiting executable

per_call() { # ns per call, from the "calls N in S s" line of file OUT
  awk '/^calls / { printf "%.1f", $4 * 1e9 / $2 }' "$1"
}

sysctl -q kernel.bpf_stats_enabled=1
hows=(unprobed binary waiting)
declare -A bpf call
for round in $(seq "$rounds"); do
  for how in "${hows[@]}"; do
    log "$how ($round/$rounds)"
    load=("$work/unwind" "$calls")
    if [ "$how" = unprobed ]; then
      "${load[@]}" > "$work/out"
      call[$how]+="$(per_call "$work/out") "
      continue
    fi
    "$spanprobe" run -c "$work/$how.yaml" > /dev/null 2> "$work/log" &
    tracer=$!
    wait_for "$work/log" 'attached'
    "$work/unwind" 1 > /dev/null
    if [ "$how" = waiting ]; then
      wait_for "$work/log" 'probing a file a process started running'
    fi
    "${load[@]}" > "$work/out"
    bpf[$how]+="$(bpf_ns "$SPANPROBE_PROGRAMS") "
    kill -INT "$tracer"
    wait "$tracer" || true
    call[$how]+="$(per_call "$work/out") "
  done
done
declare -A bpf_median call_median
for how in "${hows[@]}"; do
  log "$how: bpf ns ${bpf[$how]:-}, ns per call ${call[$how]}"
  bpf_median[$how]=$(tr ' ' '\n' <<<"${bpf[$how]:-}" | grep . | median || true)
  call_median[$how]=$(tr ' ' '\n' <<<"${call[$how]}" | grep . | median)
done
base=${call_median[unprobed]}
added_binary=$(minus "${call_median[binary]}" "$base")
echo "| \`leaf\`, $calls calls | BPF ns per call | × \`binary:\` | added ns per call | × \`binary:\` |"
echo "|---|---|---|---|---|"
row() { # LABEL HOW
  local added
  added=$(minus "${call_median[$2]}" "$base")
  echo "| $1 | ${bpf_median[$2]} | $(ratio "${bpf_median[$2]}" "${bpf_median[binary]}") | $added | $(ratio "$added" "$added_binary") |"
}
row "\`binary:\` target" binary
row "\`executable:\` target, no process at start" waiting
