//! Attaching and detaching at scale: a glob over a real library's functions through
//! uprobe_multi links, the perf-event fallback, attaching to a process mid-call, and a `pid:`
//! target's processes followed through forks.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use support::{
    receiver::{ReceivedSpan, Receiver},
    scenario::{Scenario, assert_exit, symbols},
};

/// Debian's libsqlite3, stripped: its dynamic symbols are all there is to probe by name.
const SQLITE: &str = "libsqlite3.so.0";
/// Every exported function of libsqlite3 (about 280).
const SQLITE_API: &str = "sqlite3_*";

fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    spans.iter().map(ReceivedSpan::name).collect()
}

/// Attaching hundreds of functions and detaching them is one system call each way: the whole
/// run ends promptly after the command (perf-event uprobes took a minute here).
#[tokio::test(flavor = "multi_thread")]
async fn a_glob_over_a_real_library_attaches_and_detaches_at_once() {
    support::needs_root!();
    let s = Scenario::start().await;
    let config = s.write(&s.config(SQLITE, symbols(&[SQLITE_API])));
    let check = support::spanprobe_with(&["check", "--config", config.to_str().unwrap()]).await;
    let report = support::stdout(&check);
    let functions: usize = report
        .split("ok, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no function count in {report}"));
    assert!(functions > 200, "{report}");
    assert!(
        report.contains(&format!(
            "run attaches {} uprobes through 2 uprobe_multi links",
            2 * functions
        )),
        "{report}"
    );

    let started = Instant::now();
    let output = support::run(&config, &["sqlite3", ":memory:", "select 40 + 2;"]).await;
    let elapsed = started.elapsed();
    let stderr = support::stderr(&output);
    assert_exit(&output, 0);
    assert_eq!(support::stdout(&output), "42\n");
    assert!(
        stderr.contains(&format!(
            "attached with uprobe_multi links probes={} links=2 functions={functions}",
            2 * functions
        )),
        "{stderr}"
    );
    // Generous for CI noise: the run takes about half a second here.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}: {stderr}");
    let spans = s.receiver.spans();
    let names = names(&spans);
    for expected in [
        "sqlite3_open_v2",
        "sqlite3_prepare_v2",
        "sqlite3_step",
        "sqlite3_close",
    ] {
        assert!(names.contains(&expected), "no {expected} span in {names:?}");
    }
    assert!(!stderr.contains("not exported"), "{stderr}");
    // The process is gone before its spans are read: its resource is still sqlite3's, known
    // from the command, never the library's.
    for span in &spans {
        assert_eq!(
            span.resource_str("service.name"),
            Some("unknown_service:sqlite3")
        );
    }
}

/// A sidecar holding the same links stops at once on SIGINT, with every span of the processes
/// it saw.
#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_with_hundreds_of_functions_stops_at_once() {
    support::needs_root!();
    let s = Scenario::start().await;
    let sidecar = s.sidecar(&s.config(SQLITE, symbols(&[SQLITE_API]))).await;
    let mut pids = Vec::new();
    for query in ["select 1;", "select 2;"] {
        let mut sqlite = tokio::process::Command::new("sqlite3")
            .args([":memory:", query])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        pids.push(i64::from(sqlite.id().unwrap()));
        assert!(sqlite.wait().await.unwrap().success());
    }
    let started = Instant::now();
    let stderr = sidecar.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}: {stderr}",
        started.elapsed()
    );
    // Other tests' processes run the library too: only ours are counted.
    // Spans arrive in no particular order.
    let mut opened: Vec<_> = s
        .receiver
        .spans()
        .into_iter()
        .filter(|s| s.name() == "sqlite3_open_v2")
        .filter_map(|s| s.resource_int("process.pid"))
        .filter(|pid| pids.contains(pid))
        .collect();
    opened.sort_unstable();
    pids.sort_unstable();
    assert_eq!(opened, pids, "one open per sqlite3 process");
}

/// `--attach perf-event` forces the fallback for kernels without uprobe_multi links: the same
/// spans, nested the same way, one perf event per function and program.
#[tokio::test(flavor = "multi_thread")]
async fn the_perf_event_fallback_traces_the_same() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let config = s.write(&s.config(&calls, symbols(&["outer", "middle", "inner"])));
    let mut cmd = tokio::process::Command::new(support::spanprobe());
    cmd.args(["run", "--attach", "perf-event", "--config"])
        .arg(&config)
        .arg("--")
        .arg(&calls)
        .args(["threads", "1"]);
    let output = cmd.output().await.unwrap();
    let stderr = support::stderr(&output);
    assert_exit(&output, 0);
    // outer, middle, inner: each an entry and a return, each its own perf event.
    assert!(
        stderr.contains("attached with perf-event uprobes probes=6 links=6 functions=3"),
        "{stderr}"
    );
    let spans = s.receiver.spans();
    assert_eq!(spans.len(), 60, "20 calls of outer -> middle -> inner");
    let parent_of = |span: &ReceivedSpan| {
        spans
            .iter()
            .find(|p| p.span.span_id == span.span.parent_span_id)
            .map(ReceivedSpan::name)
    };
    for span in &spans {
        let expected = match span.name() {
            "outer" => None,
            "middle" => Some("outer"),
            "inner" => Some("middle"),
            other => panic!("unexpected span {other}"),
        };
        assert_eq!(parent_of(span), expected, "parent of {}", span.name());
    }
}

/// Attaching while a process is inside probed calls never makes a false "unwound" span: every
/// return is attached before any entry, so a call seen entering is seen returning (with the
/// entries first, calls that entered between the two got frames that never popped).
#[tokio::test(flavor = "multi_thread")]
async fn attaching_to_a_busy_process_makes_no_false_unwound_spans() {
    support::needs_root!();
    let (mut s, calls) = Scenario::with_calls("calls-busy", &[]).await;
    // One thread calling work() -> inner() as fast as it can for 30 s.
    let mut busy = tokio::process::Command::new(&calls)
        .args(["load", "1", "30"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for attach in 1..=3 {
        s.receiver = Receiver::start().await;
        let sidecar = s
            .sidecar(&s.config(&calls, symbols(&["work", "inner"])))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stderr = sidecar.stop().await;
        let spans = s.receiver.spans();
        assert!(spans.len() > 100, "attach {attach}: {} spans", spans.len());
        let unwound: Vec<_> = spans
            .iter()
            .filter_map(|s| s.str_attr("spanprobe.incomplete"))
            .collect();
        assert!(unwound.is_empty(), "attach {attach}: {unwound:?}\n{stderr}");
        // An inner call whose work() entered before the probes is a root; any other has its
        // work() parent, but for at most the one call in flight when the probes went: its
        // work() may return after the return probe is gone.
        let orphans = spans
            .iter()
            .filter(|s| !s.span.parent_span_id.is_empty())
            .filter(|inner| {
                !spans
                    .iter()
                    .any(|p| p.name() == "work" && p.span.span_id == inner.span.parent_span_id)
            })
            .count();
        assert!(
            orphans <= 1,
            "attach {attach}: {orphans} parents never exported"
        );
    }
    let _ = busy.kill().await;
}

/// `forker`, started apart from spanprobe: its pid once it says it is ready, and the child.
async fn forker(path: &std::path::Path) -> (i32, tokio::process::Child) {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let mut child = tokio::process::Command::new(path)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .await
        .unwrap();
    let pid = ready["forker[".len()..ready.find(']').unwrap()]
        .parse()
        .unwrap();
    (pid, child)
}

/// A `pid:` target is the process and every process it forks after spanprobe attached (as a
/// postmaster's backends), not the other processes running the same binary.
#[tokio::test(flavor = "multi_thread")]
async fn a_pid_target_follows_the_processes_it_forks() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = s.c_program("forker");
    let (pid, mut traced) = forker(&program).await;
    let (other_pid, mut other) = forker(&program).await;
    let mut config = s.config(
        &program,
        serde_json::json!([{ "symbol": "work",
                             "args": [{ "index": 0, "name": "generation", "type": "i64" }] }]),
    );
    config["probes"][0]["pid"] = serde_json::json!(pid);
    let check = s.check(&config, 0).await;
    assert!(
        check.contains(&format!("pid {pid} and the processes it forks")),
        "{check}"
    );
    let tracer = s.sidecar(&config).await;
    for forker in [pid, other_pid] {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(forker, libc::SIGUSR1) };
    }
    // Each forker waits for its child, which waits for its own: once both have exited, every
    // generation has returned from work().
    for child in [&mut traced, &mut other] {
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the forker ends")
            .unwrap();
        assert!(status.success());
    }
    tracer.stop().await;
    let spans = s.receiver.spans();
    let mut generations: Vec<_> = spans.iter().map(|s| s.int_attr("generation")).collect();
    generations.sort();
    assert_eq!(generations, [Some(1), Some(2), Some(3)], "{spans:#?}");
    let pids: Vec<_> = spans
        .iter()
        .map(|s| s.resource_int("process.pid"))
        .collect();
    assert!(pids.contains(&Some(i64::from(pid))), "{pids:?}");
    assert!(!pids.contains(&Some(i64::from(other_pid))), "{pids:?}");
}
