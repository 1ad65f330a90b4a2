//! Checks the scenarios share: what the traced programs printed, and what spanprobe's log
//! says of attaching and exporting.

use std::path::Path;

use crate::support::vm::ScriptOutput;

/// What spanprobe logs when the kernel has no uprobe_multi links and it falls back by itself.
const FALLBACK_WARNING: &str = "WARN attaching perf-event uprobes instead of uprobe_multi links";

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

/// Asserts what spanprobe's log says of attaching `probes` uprobes for `functions` functions
/// of a command: one perf event each, in the command's processes only (on every kernel: all
/// have tracefs), or in every process with `--attach perf-event`; never a fallback warning.
pub fn assert_attached(
    output: &ScriptOutput,
    forced_perf_event: bool,
    (probes, functions): (usize, usize),
) {
    let how = if forced_perf_event {
        "perf-event uprobes"
    } else {
        "uprobes in the command's processes only"
    };
    let attached =
        format!("INFO attached with {how} probes={probes} links={probes} functions={functions} ");
    assert!(
        output.stderr.contains(&attached),
        "no {attached:?} in\n{output}"
    );
    assert!(!output.stderr.contains(FALLBACK_WARNING), "{output}");
}
