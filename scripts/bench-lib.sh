# Helpers the bench scripts share; sourced, not run.

# bpf_stats_workdir: sets $work to a fresh directory, removed on exit, when
# kernel.bpf_stats_enabled is also set back to what it was.
bpf_stats_workdir() {
  work=$(mktemp -d)
  stats_enabled=$(sysctl -n kernel.bpf_stats_enabled)
  trap 'sysctl -q kernel.bpf_stats_enabled="$stats_enabled"; rm -rf "$work"' EXIT
}

# build_unwind DIR: tests/programs/unwind.c and its librelay.so into DIR, every function with
# a frame, so that every way to unwind sees the whole stack.
build_unwind() {
  local flags=(-O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls)
  gcc "${flags[@]}" -fPIC -shared -o "$1/librelay.so" tests/programs/relay.c
  gcc "${flags[@]}" -o "$1/unwind" tests/programs/unwind.c -L"$1" -Wl,-rpath,"$1" -lrelay
}

# bpf_ns NAME_REGEX: the BPF run time per call of the programs whose names match (anchored),
# entry and return together: their run time summed, over the most runs of any one of them.
# Cumulative while kernel.bpf_stats_enabled is 1, so sampled during a run.
bpf_ns() {
  bpftool prog show | awk -v names="^($1)\$" '
    / kprobe / { for (i = 1; i < NF; i++) if ($i == "name") name = $(i + 1)
      if (name !~ names) next
      for (i = 1; i < NF; i++) {
        if ($i == "run_time_ns") t += $(i + 1)
        if ($i == "run_cnt" && $(i + 1) > n) n = $(i + 1)
      } }
    END { if (n) printf "%.0f", t / n }'
}
# spanprobe's entry and return programs, in every variant.
SPANPROBE_PROGRAMS='spanprobe_entry(_sleepable)?(_perf)?|spanprobe_return(_perf)?'

# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
# ratio A B: A / B to two decimals, "-" when B is not positive.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# minus A B: A - B to one decimal.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
# ticks PID: the CPU time of process PID so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# wait_for FILE PATTERN: until FILE has a line matching PATTERN (a tracer has attached).
wait_for() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
  printf 'no %s in %s\n' "$2" "$1" >&2
  cat "$1" >&2
  exit 1
}
