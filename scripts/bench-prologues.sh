#!/usr/bin/env bash
# Where probes sit, for every function of real binaries: how many `check` finds single-stepped
# by the kernel (a second trap per call) now, against the rule before probes moved past a
# prologue's first instructions (only past an `endbr64` onto a push), for a config reading all
# six argument registers of every function and for one reading none (a probe may then move
# past writes to them too). Prints a Markdown table.
# Usage: scripts/bench-prologues.sh SPANPROBE BINARY...
set -euo pipefail
spanprobe=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| binary | functions | single-stepped before | now, reading six arguments | moved | now, reading none | moved | now ÷ before (six, none) |"
echo "|---|---|---|---|---|---|---|---|"
# report BINARY READS: check's report on every function of BINARY, reading READS arguments.
report() {
  {
    printf 'probes:\n  - binary: %s\n    functions:\n      - symbol: "*"\n' "$1"
    if [ "$2" -gt 0 ]; then
      printf '        args:\n'
      for i in $(seq 0 $(($2 - 1))); do printf '          - { index: %d, name: a%d, type: u64 }\n' "$i" "$i"; done
    fi
  } > "$work/all.yaml"
  "$spanprobe" check -c "$work/all.yaml" > "$work/check$2.out" 2>&1 || true
}
count() { grep -c "$1" "$2" || true; }
for binary in "$@"; do
  report "$binary" 6
  report "$binary" 0
  # One line per probed function (two-space indent); RET sites and helpers are indented more.
  total=$(grep -c '^  [^ ]' "$work/check6.out" || true)
  stepped6=$(count 'single-stepped by the kernel (a second trap' "$work/check6.out")
  moved6=$(count 'which the kernel emulates)' "$work/check6.out")
  stepped0=$(count 'single-stepped by the kernel (a second trap' "$work/check0.out")
  moved0=$(count 'which the kernel emulates)' "$work/check0.out")
  # What the rule before moved too: an `endbr64` before a push.
  moved_before=$(count 'past `endbr64`, onto `push' "$work/check6.out")
  before=$((stepped6 + moved6 - moved_before))
  share() { awk -v n="$1" -v d="$total" 'BEGIN { printf "%d (%.0f %%)", n, d ? 100 * n / d : 0 }'; }
  ratio() { awk -v a="$1" -v b="$before" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
  echo "| \`$binary\` | $total | $(share "$before") | $(share "$stepped6") | $(share "$moved6") | $(share "$stepped0") | $(share "$moved0") | $(ratio "$stepped6"), $(ratio "$stepped0") |"
done
