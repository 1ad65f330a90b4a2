#!/usr/bin/env bash
# Where probes sit, for every function of real binaries: how many `check` finds single-stepped
# by the kernel (a second trap per call) now, against the rule before probes moved past a
# prologue's first instructions (only past an `endbr64` onto a push). Prints a Markdown table.
# Usage: scripts/bench-prologues.sh SPANPROBE BINARY...
set -euo pipefail
spanprobe=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| binary | functions | single-stepped before | single-stepped now | moved onto an emulated instruction | now ÷ before |"
echo "|---|---|---|---|---|---|"
for binary in "$@"; do
  printf 'probes:\n  - binary: %s\n    functions:\n      - symbol: "*"\n' "$binary" > "$work/all.yaml"
  "$spanprobe" check -c "$work/all.yaml" > "$work/check.out" 2>&1 || true
  # One line per probed function (two-space indent); RET sites and helpers are indented more.
  total=$(grep -c '^  [^ ]' "$work/check.out" || true)
  stepped=$(grep -c 'single-stepped by the kernel (a second trap' "$work/check.out" || true)
  moved=$(grep -c 'which the kernel emulates)' "$work/check.out" || true)
  # What the rule before moved too: an `endbr64` before a push.
  moved_before=$(grep -c 'past `endbr64`, onto `push' "$work/check.out" || true)
  before=$((stepped + moved - moved_before))
  share() { awk -v n="$1" -v d="$total" 'BEGIN { printf "%d (%.0f %%)", n, d ? 100 * n / d : 0 }'; }
  echo "| \`$binary\` | $total | $(share "$before") | $(share "$stepped") | $(share "$moved") | $(awk -v a="$stepped" -v b="$before" 'BEGIN { printf "%.2f", b ? a / b : 0 }') |"
done
