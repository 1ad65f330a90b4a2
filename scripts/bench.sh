#!/usr/bin/env bash
# Benchmarks, written to BENCHMARKS.md: per-call cost of a probed function unprobed, under the
# bpftrace counting floor, under spanprobe (with and without stacks), and the userspace
# pipeline and symbolization (criterion). Every figure comes from this one run. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
SPANPROBE_EXTRA_APT="bpftrace" ./scripts/setup.sh
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
cargo build --release --quiet
CALLS=${CALLS:-200000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -pthread \
  -o "$work/calls" tests/programs/calls.c

# ns per call as the program measures it: "bench N calls X ns/call".
per_call() { grep -o '[0-9.]* ns/call' | head -n1 | cut -d' ' -f1; }

unprobed=$("$work/calls" bench "$CALLS" | per_call)
floor=$(bpftrace -q -e "uprobe:$work/calls:inner { @entries = count(); } uretprobe:$work/calls:inner { @returns = count(); }" \
  -c "$work/calls bench $CALLS" 2>/dev/null | per_call)

config() { # $1: extra function keys
  cat > "$work/spanprobe.yaml" <<YAML
exporter: { stdout: { format: json } }
probes:
  - binary: $work/calls
    functions:
      - { symbol: inner, args: [{ index: 0, name: x, type: i64 }], return: { type: i64 }$1 }
YAML
}
config ""
spanprobe=$(./target/release/spanprobe run --log-level warn -c "$work/spanprobe.yaml" -- "$work/calls" bench "$CALLS" | per_call)
config ", stack: true"
stacks=$(./target/release/spanprobe run --log-level warn -c "$work/spanprobe.yaml" -- "$work/calls" bench "$CALLS" | per_call)

cargo bench --quiet --bench pipeline -- --noplot 2>/dev/null > "$work/criterion.txt" || true
thrpt() { grep -A2 "^$1" "$work/criterion.txt" | grep -o 'thrpt: *\[[^]]*\]' | awk '{print $4, $5}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r),"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
  echo "Every figure is from the same run; ratios are to the bpftrace counting floor."
  echo
  echo "## Per call of a probed function ($CALLS calls of \`inner\` in tests/programs/calls.c)"
  echo
  echo "| run | ns per call | × floor |"
  echo "|---|---|---|"
  echo "| unprobed | $unprobed | $(ratio "$unprobed" "$floor") |"
  echo "| bpftrace uprobe + uretprobe, counting (the floor) | $floor | 1.00 |"
  echo "| spanprobe, argument + return, spans to stdout JSON | $spanprobe | $(ratio "$spanprobe" "$floor") |"
  echo "| spanprobe, as above with \`stack: true\` | $stacks | $(ratio "$stacks" "$floor") |"
  echo
  echo "## Userspace (criterion, no kernel)"
  echo
  echo "| stage | throughput |"
  echo "|---|---|"
  echo "| ring-buffer record → span (decode + assemble) | $(thrpt pipeline/decode_and_assemble_1024) |"
  echo "| stack symbolization, cold (files parsed) | $(thrpt symbolize/cold_256_addresses) addresses |"
  echo "| stack symbolization, warm (cached per file and offset) | $(thrpt symbolize/warm_256_addresses) addresses |"
  echo
  echo "## Notes"
  echo
  echo "- \`inner\` starts with \`lea\`, an instruction the kernel single-steps rather than emulates,"
  echo "  so the trap dominates every probed run (see ../shared/TOOLCHAIN.md); the ratios are what"
  echo "  spanprobe adds on top of it. Figures on this 2-core VM vary by ±10% between runs."
  echo "- spanprobe's runs include its userspace (decoding, symbolizing, writing JSON) competing for"
  echo "  the second core; any call the ring buffer could not take would be reported on stderr."
  echo "- Symbolization is per distinct (file, offset): warm lookups are cache hits; cold ones parse"
  echo "  the ELF and DWARF of the file once."
} > BENCHMARKS.md.new
mv BENCHMARKS.md.new BENCHMARKS.md
cat BENCHMARKS.md
