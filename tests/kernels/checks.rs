//! Checks the scenarios share: what the traced programs printed, and what spanprobe's log
//! says of attaching and exporting.

use std::path::Path;

use crate::support::vm::{Machine, ScriptOutput};

/// What spanprobe logs when the kernel has no uprobe_multi links and it falls back by itself.
const FALLBACK_WARNING: &str = "WARN attaching perf-event uprobes instead of uprobe_multi links: \
     the kernel has no uprobe_multi links (Linux 6.6+); each is detached alone (~0.1 s per \
     function and program), and attaching needs CAP_SYS_ADMIN\n";

/// The pids that `program` printed as `PROGRAM[PID] ...` lines (calls.c does), in order.
pub fn printed_pids(stdout: &str, program: &str) -> Vec<i64> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(program)?.strip_prefix('[')?;
            rest.split_once(']')?.0.parse().ok()
        })
        .collect()
}

/// The pid that `program` printed (see [`printed_pids`]), asserting that it printed one.
pub fn printed_pid(output: &ScriptOutput, program: &str) -> i64 {
    let [pid] = printed_pids(&output.stdout, program)[..] else {
        panic!("no pid printed: {output}")
    };
    pid
}

/// The 1-based number of the first line of `file` containing `text`, after the first line
/// containing `after`.
pub fn line_of(file: &Path, after: &str, text: &str) -> i64 {
    let source = std::fs::read_to_string(file).expect("a test program's source");
    let start = source
        .lines()
        .position(|l| l.contains(after))
        .unwrap_or_else(|| panic!("no {after:?} in {}", file.display()));
    let found = source
        .lines()
        .skip(start)
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no {text:?} after {after:?} in {}", file.display()));
    (start + found + 1) as i64
}

/// Asserts that `output`'s stderr has spanprobe's line saying it exported every one of
/// `spans` spans, and lost none.
pub fn assert_all_exported(output: &ScriptOutput, spans: usize) {
    let done = format!("INFO done events={spans} exported={spans} dropped=0 ");
    assert!(output.stderr.contains(&done), "no {done:?} in\n{output}");
}

/// Asserts what spanprobe's log says of attaching `probes` uprobes for `functions` functions:
/// through uprobe_multi links (`multi_links` of them) where the kernel has them and
/// `--attach perf-event` was not given; otherwise as perf-event uprobes, one link each, and
/// when the kernel made it fall back, with the warning saying why.
pub fn assert_attached(
    machine: &Machine,
    output: &ScriptOutput,
    forced_perf_event: bool,
    (probes, functions, multi_links): (usize, usize, usize),
) {
    let has_multi = machine.has_uprobe_multi();
    let attached = if has_multi && !forced_perf_event {
        format!(
            "INFO attached with uprobe_multi links probes={probes} links={multi_links} \
             functions={functions} "
        )
    } else {
        format!(
            "INFO attached with perf-event uprobes probes={probes} links={probes} \
             functions={functions} "
        )
    };
    assert!(
        output.stderr.contains(&attached),
        "no {attached:?} in\n{output}"
    );
    let fell_back = !has_multi && !forced_perf_event;
    assert_eq!(
        output.stderr.contains(FALLBACK_WARNING),
        fell_back,
        "the fallback warning {}expected:\n{output}",
        if fell_back { "" } else { "not " }
    );
}
