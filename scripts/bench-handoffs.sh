#!/usr/bin/env bash
# What handoffs cost a function that takes no part in one: the BPF run time per call (entry +
# return, kernel.bpf_stats_enabled) of calls.c's `work`, traced by this spanprobe and by the
# one before handoffs (BASELINE, built once into target/bench-baseline), alternating in one
# run; and by this one with a handoff configured between two functions the load never calls,
# which makes every call carry its trace from caller to callee. Prints a Markdown table.
# Usage: scripts/bench-handoffs.sh SPANPROBE [ROUNDS]
set -euo pipefail
spanprobe=$1
rounds=${2:-5}
baseline_rev=${BASELINE:-9f18975}
cd "$(dirname "$0")/.."
log() { printf 'bench-handoffs: %s\n' "$*" >&2; }
work=$(mktemp -d)
stats_enabled=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  sysctl -q kernel.bpf_stats_enabled="$stats_enabled"
  git worktree remove --force "$work/baseline" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

baseline=$PWD/target/bench-baseline/$baseline_rev/spanprobe
if [ ! -x "$baseline" ]; then
  log "building the baseline, $baseline_rev"
  git worktree add --detach --quiet "$work/baseline" "$baseline_rev"
  (cd "$work/baseline" && CARGO_TARGET_DIR=$PWD/../baseline-target cargo build --release --quiet)
  mkdir -p "$(dirname "$baseline")"
  cp "$work/baseline-target/release/spanprobe" "$baseline"
fi

gcc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -pthread \
  -o "$work/calls" tests/programs/calls.c
# Spans go nowhere: the kernel side is measured, and every trace is kept and sent.
cat > "$work/plain.yaml" <<YAML
exporter: { stdout: { format: json, file: /dev/null } }
probes:
  - binary: $work/calls
    functions:
      - { symbol: work, args: [{ index: 0, name: x, type: i64 }], return: { type: i64 } }
YAML
cp "$work/plain.yaml" "$work/handoffs.yaml"
cat >> "$work/handoffs.yaml" <<YAML
    handoffs:
      - from: { symbol: tick, arg: 0 }
        to: { symbol: slow, arg: 0 }
YAML

# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

sysctl -q kernel.bpf_stats_enabled=1
declare -A samples
for round in $(seq "$rounds"); do
  for how in baseline plain handoffs; do
    log "$how ($round/$rounds)"
    binary=$spanprobe config=$work/$how.yaml
    [ "$how" = baseline ] && binary=$baseline config=$work/plain.yaml
    "$binary" run -c "$config" -- "$work/calls" load 1 5 > /dev/null 2> "$work/log" &
    sleep 4
    samples[$how]+="$(bpf_ns "$SPANPROBE_PROGRAMS") "
    wait $!
  done
done
for how in baseline plain handoffs; do log "$how samples: ${samples[$how]}"; done
declare -A ns
for how in baseline plain handoffs; do ns[$how]=$(tr ' ' '\n' <<<"${samples[$how]}" | grep . | median); done
echo "| spanprobe | ns per call of \`work\` | × before handoffs |"
echo "|---|---|---|"
echo "| before handoffs ($baseline_rev) | ${ns[baseline]} | 1.00 |"
echo "| now, no handoff in the config | ${ns[plain]} | $(ratio "${ns[plain]}" "${ns[baseline]}") |"
echo "| now, a handoff between two functions not called | ${ns[handoffs]} | $(ratio "${ns[handoffs]}" "${ns[baseline]}") |"
