#!/usr/bin/env bash
# Attach and detach time for 10, 100 and 1,000 functions (uprobe + uretprobe each): spanprobe
# with uprobe_multi links, with a command's own probes (for 10, where they are the default),
# forced onto perf-event uprobes (--attach perf-event, the fallback for kernels without multi
# links), and bpftrace counting on the same functions, all in this run. Prints a Markdown section on stdout; scripts/bench.sh puts it in BENCHMARKS.md.
#
# "attach" is from the tracer's launch until the traced program starts (all probes in place),
# "detach" from the program's exit until the tracer's; the program prints both times. Needs
# root, bpftrace and a release build. Knobs: SIZES (default "10 100 1000"), REPEAT (runs of
# each; the median is kept; perf-event runs of 1,000 functions are made once: ~4 min each).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-10 100 1000}
REPEAT=${REPEAT:-3}
spanprobe=$PWD/target/release/spanprobe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { printf 'bench-attach: %s\n' "$*" >&2; }
median() { grep -E '^[0-9]+$' | sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else print a + b }'; }
# Three significant digits: uprobe_multi links are hundreds of times faster.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b > 0) printf "%.3g", a / b; else print "-" }'; }
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
# bpftrace refuses more than 512 probes unless told; 1,000 functions take 2,000.
export BPFTRACE_MAX_PROBES=4096

program() { # N: $work/many-N, N functions fn_0.. called once each, timing its start and end
  local n=$1
  {
    echo '#include <stdio.h>'
    echo '#include <time.h>'
    echo 'static long now_us(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t);'
    echo '    return t.tv_sec * 1000000L + t.tv_nsec / 1000; }'
    for i in $(seq 0 $((n - 1))); do
      echo "__attribute__((noinline)) long fn_$i(long x) { return x + $i; }"
    done
    echo 'int main(void) {'
    echo '    fprintf(stderr, "started %ld\n", now_us());'
    echo '    long total = 0;'
    for i in $(seq 0 $((n - 1))); do echo "    total += fn_$i($i);"; done
    echo '    fprintf(stderr, "ended %ld\n", now_us());'
    echo '    return total > 0 ? 0 : 1;'
    echo '}'
  } > "$work/many-$n.c"
  gcc -O1 -fno-omit-frame-pointer -o "$work/many-$n" "$work/many-$n.c"
  printf 'exporter: { stdout: {} }\nprobes:\n  - binary: %s\n    functions: [{ symbol: "fn_*", return: { type: i64 } }]\n' \
    "$work/many-$n" > "$work/many-$n.yaml"
}

# timed COMMAND...: "ATTACH_MS DETACH_MS" for one traced run of a many-N program, or "- -" if
# it failed (logged).
timed() {
  local t0 t1
  t0=${EPOCHREALTIME/./}
  "$@" > /dev/null 2> "$work/err" || { log "failed: $* $(tail -3 "$work/err")"; echo "- -"; return 0; }
  t1=${EPOCHREALTIME/./}
  local started ended
  started=$(awk '/^started / { print $2 }' "$work/err")
  ended=$(awk '/^ended / { print $2 }' "$work/err")
  awk -v a="$t0" -v s="$started" -v e="$ended" -v z="$t1" \
    'BEGIN { printf "%.0f %.0f\n", (s - a) / 1000, (z - e) / 1000 }'
}

# The ways of attaching measured for N functions: a command's own probes (tracefs perf events
# inherited by its tasks) only where they are the default, up to 16 functions (32 probes).
hows() {
  if [ "$1" -le 16 ]; then echo multi command perf-event bpftrace; else echo multi perf-event bpftrace; fi
}

declare -A attach detach
for n in $SIZES; do
  program "$n"
  script="uprobe:$work/many-$n:fn_* { @entries = count(); } uretprobe:$work/many-$n:fn_* { @returns = count(); }"
  for how in $(hows "$n"); do
    runs=$REPEAT
    [ "$how" != multi ] && [ "$n" -ge 1000 ] && runs=1
    a="" d=""
    for round in $(seq "$runs"); do
      log "$n functions, $how ($round/$runs)"
      case $how in
        bpftrace) read -r at dt < <(timed bpftrace -q -e "$script" -c "$work/many-$n") ;;
        *) read -r at dt < <(timed "$spanprobe" run --attach "$how" -c "$work/many-$n.yaml" -- "$work/many-$n") ;;
      esac
      a+="$at " d+="$dt "
    done
    attach[$n-$how]=$(tr ' ' '\n' <<<"$a" | median)
    detach[$n-$how]=$(tr ' ' '\n' <<<"$d" | median)
  done
done

echo "## Attach and detach (uprobe + uretprobe on N functions, \`scripts/bench-attach.sh\`)"
echo
echo "Milliseconds from the tracer's launch until the traced program starts (attach: load,"
echo "verify, attach), and from the program's exit until the tracer's (detach, drain, flush);"
echo "median of $REPEAT runs (1 run for perf events at 1,000 functions). Ratios are to"
echo "bpftrace's counting probes on the same functions in the same run."
echo
echo "| functions | how | attach ms | detach ms | attach + detach ms | × bpftrace |"
echo "|---|---|---|---|---|---|"
for n in $SIZES; do
  floor=$(sum "${attach[$n-bpftrace]}" "${detach[$n-bpftrace]}")
  for how in $(hows "$n"); do
    total=$(sum "${attach[$n-$how]}" "${detach[$n-$how]}")
    case $how in
      multi) label="spanprobe, uprobe_multi links (\`--attach multi\`)" ;;
      command) label="spanprobe, in the command's processes only (the default here)" ;;
      perf-event) label="spanprobe, perf events (\`--attach perf-event\`)" ;;
      bpftrace) label="bpftrace $(bpftrace --version | awk '{ print $2 }')" ;;
    esac
    echo "| $n | $label | ${attach[$n-$how]} | ${detach[$n-$how]} | $total | $(ratio "$total" "$floor") |"
  done
done
