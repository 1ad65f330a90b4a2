//! Which processes are traced: a command's children from their first call, every process of
//! a binary (each with its own resource), and one already running, by pid.

mod support;

use std::{collections::HashSet, path::Path, process::Stdio, time::Duration};

use serde_json::{Value, json};
use support::{
    SPANS_WAIT,
    receiver::{ReceivedSpan, Receiver},
    scenario::{Scenario, by_id, chain, named},
};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// `run -- CMD` traces the processes CMD starts too, from their first call: through a shell
/// (fork and exec), and a fork that calls at once without exec.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_s_children_are_traced_from_their_first_call() {
    support::needs_root!();
    let (mut s, calls) = Scenario::with_calls("calls-children", &[]).await;

    let script = format!("{} threads 1; true", calls.display());
    let config = s.config(&calls, chain(&[]));
    let (_, spans) = s.trace(&config, &["sh", "-c", &script]).exits(0).await;
    assert_eq!(
        named(&spans, "outer").len(),
        20,
        "the shell's child was traced"
    );
    assert_eq!(spans.len(), 60);

    s.receiver = Receiver::start().await;
    let config = s.config(&calls, chain(&[]));
    let (_, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "fork"])
        .exits(0)
        .await;
    let outers = named(&spans, "outer");
    let mut xs: Vec<_> = outers.iter().map(|s| s.int_attr("x").unwrap()).collect();
    xs.sort();
    assert_eq!(xs, [1, 2], "the parent's call and the child's first");
    let pids: HashSet<_> = outers
        .iter()
        .map(|s| s.resource_int("process.pid").unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    let ids = by_id(&spans);
    for inner in named(&spans, "inner") {
        let middle = ids[&inner.span.parent_span_id];
        let outer = ids[&middle.span.parent_span_id];
        assert_eq!(outer.name(), "outer");
        assert_eq!(
            outer.resource_int("process.pid"),
            inner.resource_int("process.pid")
        );
    }
}

/// The `process.command_args` resource attribute, a string array.
fn command_args(span: &ReceivedSpan) -> Vec<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let value = span
        .resource
        .iter()
        .find(|kv| kv.key == "process.command_args")
        .and_then(|kv| kv.value.as_ref());
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::ArrayValue(array)) => array
            .values
            .iter()
            .filter_map(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        other => panic!("process.command_args is {other:?}"),
    }
}

/// `calls.c`'s `tick(i)`, with its argument.
fn ticks() -> Value {
    json!([{ "symbol": "tick", "args": [{ "index": 0, "name": "i", "type": "i64" }] }])
}

#[tokio::test(flavor = "multi_thread")]
async fn every_process_of_the_binary_each_with_its_own_resource() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-many", &[]).await;
    let tracer = s.sidecar(&s.config(&calls, ticks())).await;
    // Two processes started after spanprobe, not by it, living long enough (60 ms) for their
    // details to be read from /proc.
    let mut pids = Vec::new();
    for _ in 0..2 {
        let output = tokio::process::Command::new(&calls)
            .args(["serve", "3"])
            .output()
            .await
            .unwrap();
        assert!(output.status.success());
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        pids.push(
            out["calls[".len()..out.find(']').unwrap()]
                .parse::<i64>()
                .unwrap(),
        );
    }
    tracer.stop().await;
    let spans = s.receiver.wait_for_spans(6, SPANS_WAIT).await;
    assert_eq!(spans.len(), 6);
    assert_ne!(pids[0], pids[1]);
    for pid in &pids {
        let mine: Vec<_> = spans
            .iter()
            .filter(|s| s.resource_int("process.pid") == Some(*pid))
            .collect();
        assert_eq!(mine.len(), 3, "pid {pid}");
        for span in mine {
            assert_eq!(
                span.resource_str("process.executable.path"),
                Some(calls.to_str().unwrap())
            );
            assert_eq!(command_args(span), [calls.to_str().unwrap(), "serve", "3"]);
            assert_eq!(span.str_attr("thread.name"), Some("calls-many"));
        }
    }
}

/// `calls serve 100`, started apart from spanprobe, with its standard output to `stdout`.
fn serve(calls: &Path, stdout: Stdio) -> tokio::process::Child {
    tokio::process::Command::new(calls)
        .args(["serve", "100"])
        .stdout(stdout)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn attaching_to_an_already_running_process_by_pid() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-serve", &[]).await;
    let mut server = serve(&calls, Stdio::piped());
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .await
        .unwrap();
    let pid: i64 = first["calls[".len()..first.find(']').unwrap()]
        .parse()
        .unwrap();
    // Another process of the same binary, which `pid:` must leave out.
    let mut other = serve(&calls, Stdio::null());
    let of_pid = |pid: i64| {
        let mut config = s.config(&calls, ticks());
        config["probes"][0]["pid"] = json!(pid);
        config
    };
    let tracer = s.sidecar(&of_pid(pid)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tracer.stop().await;
    let spans = s.receiver.spans();
    assert!(spans.len() >= 5, "{} spans", spans.len());
    assert!(
        spans
            .iter()
            .all(|s| s.resource_int("process.pid") == Some(pid))
    );
    let mut ticks: Vec<_> = spans.iter().map(|s| s.int_attr("i").unwrap()).collect();
    ticks.sort();
    ticks.dedup();
    assert_eq!(ticks.len(), spans.len(), "each tick once");
    assert!(
        ticks[0] > 0,
        "the process was running before spanprobe: {ticks:?}"
    );
    let _ = server.kill().await;
    let _ = other.kill().await;

    // A process that has not loaded the binary, and one that does not exist, are refused
    // before anything is attached.
    let mut sleeper = tokio::process::Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let sleeper_pid = sleeper.id().unwrap();
    for (pid, expected) in [
        (sleeper_pid, format!("process {sleeper_pid} (")),
        (4_000_000, "no process 4000000 is running".to_owned()),
    ] {
        let output = s.run(&of_pid(i64::from(pid)), &[]).await;
        assert_eq!(output.status.code(), Some(2));
        let err = support::stderr(&output);
        assert!(err.contains(&expected) && err.contains(".pid"), "{err}");
        if pid == sleeper_pid {
            assert!(err.contains("has not loaded"), "{err}");
        }
    }
    let _ = sleeper.kill().await;
}

/// With a command, the probes' breakpoints are in the command's processes only: another
/// process of the same binary runs its code unchanged and takes no trap, where with
/// `--attach multi` (in every process) it holds the breakpoint too. Seen in the processes'
/// own memory, where the kernel writes a uprobe's `int3`.
#[tokio::test(flavor = "multi_thread")]
async fn with_a_command_only_its_processes_take_traps() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-scoped", &[]).await;
    let tick = support::symbol_address(&calls, "tick").await;
    let code = std::fs::read(&calls).unwrap()[tick as usize..][..16].to_vec();
    let config = s.write(&s.config(&calls, ticks()));
    for (options, elsewhere) in [(&[][..], false), (&["--attach", "multi"][..], true)] {
        let mut untraced = serve(&calls, Stdio::null());
        let untraced_pid = untraced.id().unwrap();
        let mut args = options.to_vec();
        let calls_path = calls.to_str().unwrap();
        args.extend(["--", calls_path, "serve", "50"]);
        let tracer = support::Sidecar::start(&config, &args).await;
        let spanprobe_pid = tracer.pid();
        let traced_pid = child_of(spanprobe_pid).await;
        // Forked before the probes were attached, it runs the command once they are. Both
        // processes' code is read once exec has mapped it: /proc/PID/exe names the new
        // program (and a spawn returns) a moment before its segments are mapped.
        wait_for_code(traced_pid, &calls, tick).await;
        wait_for_code(untraced_pid, &calls, tick).await;
        let breakpoint = |pid| code_of(pid, &calls, tick, code.len()).contains(&0xcc);
        assert!(
            breakpoint(traced_pid),
            "{options:?}: the command holds the probe"
        );
        assert_eq!(
            breakpoint(untraced_pid),
            elsewhere,
            "{options:?}: the other process {}",
            if elsewhere {
                "holds it too"
            } else {
                "runs unchanged"
            }
        );
        assert!(!code.contains(&0xcc), "the file itself has no int3");
        let stderr = tracer.wait().await;
        let _ = untraced.kill().await;
        assert!(!stderr.contains("WARN"), "{stderr}");
        assert_eq!(events_of(spanprobe_pid), 0, "tracefs events left behind");
    }
    let spans = s.receiver.wait_for_spans(100, SPANS_WAIT).await;
    assert_eq!(spans.len(), 100, "both runs' 50 ticks");

    // A spanprobe killed outright leaves its tracefs events; the next run removes them.
    let calls_path = calls.to_str().unwrap();
    let killed = support::Sidecar::start(&config, &["--", calls_path, "serve", "5"]).await;
    let killed_pid = killed.pid();
    // SAFETY: plain kill(2).
    unsafe { libc::kill(killed_pid, libc::SIGKILL) };
    drop(killed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(events_of(killed_pid), 2, "a tick's entry and return probes");
    let next = support::Sidecar::start(&config, &["--", calls_path, "serve", "5"]).await;
    assert_eq!(events_of(killed_pid), 0, "removed by the next run");
    next.wait().await;
}

/// How many uprobe events spanprobe process `pid` has defined in tracefs (its group is
/// `spanprobe_<pid namespace>_<pid>`).
fn events_of(pid: i32) -> usize {
    let events = std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap();
    let group = format!("_{pid}/");
    events
        .lines()
        .filter(|e| e.contains(":spanprobe_") && e.contains(&group))
        .count()
}

/// The first child of process `parent` (forked by any of its threads), once it has one.
async fn child_of(parent: i32) -> u32 {
    for _ in 0..100 {
        let tasks = std::fs::read_dir(format!("/proc/{parent}/task")).unwrap();
        let child = tasks.flatten().find_map(|task| {
            let children = std::fs::read_to_string(task.path().join("children")).ok()?;
            children.split_whitespace().next()?.parse().ok()
        });
        if let Some(child) = child {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("process {parent} started no child");
}

/// Waits until process `pid` has `binary`'s code at file offset `offset` mapped.
async fn wait_for_code(pid: u32, binary: &Path, offset: u64) {
    for _ in 0..200 {
        if code_base(pid, binary, offset).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {pid} never mapped {}", binary.display());
}

/// Where process `pid` maps `binary`'s file offset 0, if it maps the part holding `offset`.
fn code_base(pid: u32, binary: &Path, offset: u64) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|line| {
        let fields: Vec<_> = line.split_whitespace().collect();
        let (range, file_offset, path) = (fields[0], fields[2], *fields.get(5)?);
        let (start, end) = range.split_once('-')?;
        let [start, end, file_offset] =
            [start, end, file_offset].map(|hex| u64::from_str_radix(hex, 16).unwrap());
        let inside = (file_offset..file_offset + (end - start)).contains(&offset);
        (Path::new(path) == binary && inside).then_some(start - file_offset)
    })
}

/// `len` bytes of `binary`'s code at file offset `offset` (its address too: a PIE's text is
/// mapped at its offset) as process `pid` runs them.
fn code_of(pid: u32, binary: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read as _, Seek as _};
    let base = code_base(pid, binary, offset).expect("the binary's code is mapped");
    let mut memory = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    memory
        .seek(std::io::SeekFrom::Start(base + offset))
        .unwrap();
    let mut code = vec![0; len];
    memory.read_exact(&mut code).unwrap();
    code
}
