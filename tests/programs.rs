//! Real programs, traced end to end: threads, recursion past the depth bound, many processes,
//! a running process, shared libraries (ours and libc), PIE and non-PIE, stripped binaries,
//! C++ and Rust, and calls that never return (exit, pthread_exit, longjmp, exceptions).

mod support;

use std::{
    collections::HashSet,
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

use serde_json::{Value, json};
use support::{
    receiver::{Answer, ReceivedSpan, Receiver},
    scenario::{
        Scenario, Workdir, assert_exit, assert_stderr_has, by_id, chain, named, probe, symbols,
    },
};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const WAIT: Duration = Duration::from_secs(15);

/// Runs `calls ARGS...` (`calls.c`) with `functions` probed, to its exit with status 0; returns
/// spanprobe's output and every span.
async fn trace_calls(functions: Value, args: &[&str]) -> (Output, Vec<ReceivedSpan>) {
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let mut command = vec![calls.to_str().unwrap()];
    command.extend(args);
    s.trace_ok(&s.config(&calls, functions), &command).await
}

fn incomplete(span: &ReceivedSpan) -> Option<&str> {
    span.str_attr("spanprobe.incomplete")
}

/// Whether every one of `spans` is of a call that returned.
fn all_returned<'a>(spans: impl IntoIterator<Item = &'a ReceivedSpan>) -> bool {
    spans.into_iter().all(|s| incomplete(s).is_none())
}

#[tokio::test(flavor = "multi_thread")]
async fn threads_keep_their_own_trees() {
    support::needs_root!();
    let (_, spans) = trace_calls(chain(&[]), &["threads", "4"]).await;
    assert_eq!(spans.len(), 4 * 20 * 3);
    let ids = by_id(&spans);
    let mut threads = HashSet::new();
    for inner in named(&spans, "inner") {
        let middle = ids[&inner.span.parent_span_id];
        let outer = ids[&middle.span.parent_span_id];
        assert_eq!((middle.name(), outer.name()), ("middle", "outer"));
        assert!(outer.span.parent_span_id.is_empty());
        // One thread per tree, one tree per trace.
        let tid = inner.int_attr("thread.id");
        assert_eq!(middle.int_attr("thread.id"), tid);
        assert_eq!(outer.int_attr("thread.id"), tid);
        assert_eq!(inner.span.trace_id, outer.span.trace_id);
        assert_eq!(inner.int_attr("x"), outer.int_attr("x").map(|x| x + 1));
        // Each thread's numbers are its own: thread i calls outer(i * 1000 + j).
        threads.insert((tid, outer.int_attr("x").unwrap() / 1000));
    }
    assert_eq!(threads.len(), 4, "{threads:?}");
    let tids: HashSet<_> = threads.iter().map(|(tid, _)| *tid).collect();
    assert_eq!(tids.len(), 4);
    let traces: HashSet<_> = spans.iter().map(|s| s.span.trace_id.clone()).collect();
    assert_eq!(traces.len(), 80);
}

#[tokio::test(flavor = "multi_thread")]
async fn recursion_past_the_depth_bound_is_counted_and_harmless() {
    support::needs_root!();
    let recurse =
        json!({ "symbol": "recurse", "args": [{ "index": 0, "name": "depth", "type": "i64" }] });
    let (output, spans) = trace_calls(chain(&[recurse]), &["recurse", "40"]).await;
    // The outermost 32 levels (depth 40 down to 9) have spans, chained; 8 deeper calls do not.
    let recursion = named(&spans, "recurse");
    let mut depths: Vec<_> = recursion
        .iter()
        .map(|s| s.int_attr("depth").unwrap())
        .collect();
    depths.sort();
    assert_eq!(depths, (9..=40).collect::<Vec<_>>());
    let ids = by_id(&spans);
    for span in &recursion {
        let depth = span.int_attr("depth").unwrap();
        match span.span.parent_span_id.as_slice() {
            [] => assert_eq!(depth, 40),
            parent => assert_eq!(ids[parent].int_attr("depth"), Some(depth + 1)),
        }
    }
    assert_stderr_has(&output, "depth_exceeded=8");
    // The calls after it are untouched.
    assert_eq!(named(&spans, "outer").len(), 1);
    assert_eq!(named(&spans, "inner")[0].int_attr("x"), Some(2));
    assert!(all_returned(&spans));
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_inside_a_call_ends_its_spans_as_errors() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let functions = chain(&[
        json!({ "symbol": "about_to_exit", "return": { "type": "i32" } }),
        json!({ "symbol": "exit_now" }),
    ]);
    let config = s.config(&calls, functions);
    let (output, spans) = s.trace(&config, &[calls.to_str().unwrap(), "exit"]).await;
    assert_exit(&output, 3);
    assert_eq!(spans.len(), 5);
    let exit_now = named(&spans, "exit_now")[0];
    let about = named(&spans, "about_to_exit")[0];
    for span in [exit_now, about] {
        assert_eq!(incomplete(span), Some("thread_exit"));
        let status = span.span.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (
                2,
                "call did not return: the thread or process exited inside it"
            )
        );
        assert_eq!(span.int_attr("return_value"), None);
    }
    assert_eq!(exit_now.span.parent_span_id, about.span.span_id);
    assert!(exit_now.span.end_time_unix_nano <= about.span.end_time_unix_nano);
    assert!(all_returned(named(&spans, "outer")));
}

#[tokio::test(flavor = "multi_thread")]
async fn pthread_exit_inside_a_call_and_calls_after_it() {
    support::needs_root!();
    let functions = chain(&[json!({ "symbol": "thread_exit_now" })]);
    let (_, spans) = trace_calls(functions, &["thread-exit"]).await;
    assert_eq!(spans.len(), 4);
    assert_eq!(
        incomplete(named(&spans, "thread_exit_now")[0]),
        Some("thread_exit")
    );
    let ids = by_id(&spans);
    let inner = named(&spans, "inner")[0];
    assert_eq!(
        ids[&ids[&inner.span.parent_span_id].span.parent_span_id].name(),
        "outer"
    );
    assert!(all_returned(named(&spans, "outer")));
}

#[tokio::test(flavor = "multi_thread")]
async fn longjmp_out_of_calls_ends_them_as_unwound() {
    support::needs_root!();
    let functions = json!([
        { "symbol": "jump_from_here" },
        { "symbol": "jump_back" },
        { "symbol": "after_jump", "return": { "type": "i32" } },
    ]);
    let (_, spans) = trace_calls(functions, &["longjmp"]).await;
    assert_eq!(spans.len(), 3);
    let jump_back = named(&spans, "jump_back")[0];
    let jump_from = named(&spans, "jump_from_here")[0];
    assert_eq!(incomplete(jump_back), Some("unwound"));
    assert_eq!(incomplete(jump_from), Some("unwound"));
    assert_eq!(jump_back.span.parent_span_id, jump_from.span.span_id);
    // The call after the jump is a root of its own, with its real return value.
    let after = named(&spans, "after_jump")[0];
    assert!(after.span.parent_span_id.is_empty());
    assert_eq!(after.int_attr("return_value"), Some(42));
    assert_eq!(incomplete(after), None);
}

/// C++ names are demangled. An exception thrown through a probed call cannot be caught: the
/// unwinder finds no unwind info at the return address the uretprobe put there, and
/// terminates the program. The calls it was in are still exported, ended at the exit.
#[tokio::test(flavor = "multi_thread")]
async fn cpp_names_are_demangled_and_exceptions_end_their_calls() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.shapes();
    let functions = json!([
        { "symbol": "shapes::total_area", "return": { "type": "i64" } },
        { "symbol": "shapes::fail_*" },
    ]);
    let (output, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .await;
    assert_exit(&output, 128 + libc::SIGABRT);
    let areas: Vec<_> = named(&spans, "shapes::total_area")
        .iter()
        .map(|s| s.int_attr("return_value").unwrap())
        .collect();
    assert_eq!(areas, [10]);
    let inner = named(&spans, "shapes::fail_inner")[0];
    let outer = named(&spans, "shapes::fail_outer")[0];
    assert_eq!(
        inner.str_attr("code.function.name"),
        Some("shapes::fail_inner")
    );
    assert_eq!(incomplete(inner), Some("thread_exit"));
    assert_eq!(incomplete(outer), Some("thread_exit"));
    assert_eq!(inner.span.parent_span_id, outer.span.span_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_names_are_demangled_without_the_hash() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.rusty(false);
    let functions = json!([{
        "symbol": "rusty::compute",
        "args": [{ "index": 0, "name": "x", "type": "u64" }],
        "return": { "type": "u64" },
    }]);
    let config = s.config(&binary, functions);
    let (_, spans) = s.trace_ok(&config, &[binary.to_str().unwrap()]).await;
    let mut calls: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                s.name().to_owned(),
                s.int_attr("x").unwrap(),
                s.int_attr("return_value").unwrap(),
            )
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("rusty::compute".into(), 1, 3),
            ("rusty::compute".into(), 2, 6),
            ("rusty::compute".into(), 3, 9)
        ]
    );
    // `init` writes the demangled name, which does not change from one build to the next.
    let init = support::spanprobe_with(&["init", binary.to_str().unwrap(), "*compute*"]).await;
    let text = support::stdout(&init);
    assert!(
        text.contains("      - symbol: 'rusty::compute'\n"),
        "{text}"
    );
    assert!(!text.contains("_ZN"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_str_and_byte_slice_are_each_one_value_counted_by_their_length() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.rusty(true);
    // `init` offers each slice as one value whose length is its second slot.
    let init = support::spanprobe_with(&["init", binary.to_str().unwrap(), "*label*"]).await;
    let text = support::stdout(&init);
    for line in [
        "          - { index: 0, name: name, type: str, len_arg: 1 }  # struct &str\n",
        "          - { index: 2, name: key, type: bytes, len_arg: 3 }  # struct &[u8]\n",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let functions = json!([{
        "symbol": "rusty::label",
        "args": [
            { "index": 0, "name": "name", "type": "str", "len_arg": 1, "max_len": 16 },
            { "index": 2, "name": "key", "type": "bytes", "len_arg": 3, "len": 2 },
        ],
        "return": { "type": "u64" },
    }]);
    let (output, spans) = s
        .trace_ok(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .await;
    assert!(support::stdout(&output).contains("lengths 14 100"));
    let mut calls: Vec<_> = spans
        .iter()
        .map(|span| {
            (
                span.int_attr("return_value").unwrap(),
                span.str_attr("name").unwrap().to_owned(),
                span.bool_attr("name.truncated"),
                span.str_attr("key").unwrap().to_owned(),
                span.bool_attr("key.truncated"),
            )
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            // The slice's 11 bytes, not the rest of the literal it points into.
            (14, "temperature".into(), None, "0102".into(), Some(true)),
            (100, "x".repeat(16), Some(true), String::new(), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buffer_counted_by_another_argument_is_read_to_its_count() {
    support::needs_root!();
    // libc's write(fd, buf, count), called by a program no one here wrote.
    let s = Scenario::start().await;
    let functions = json!([{
        "symbol": "write",
        "args": [
            { "index": 0, "name": "fd", "type": "i32" },
            { "index": 1, "name": "text", "type": "str", "len_arg": 2 },
        ],
    }]);
    let config = s.config("libc.so.6", functions);
    let (output, spans) = s.trace_ok(&config, &["/bin/echo", "hello, world"]).await;
    assert_eq!(support::stdout(&output), "hello, world\n");
    let writes: Vec<_> = named(&spans, "write")
        .into_iter()
        .filter(|span| span.int_attr("fd") == Some(1))
        .collect();
    assert_eq!(writes.len(), 1, "{spans:?}");
    assert_eq!(writes[0].str_attr("text"), Some("hello, world\n"));
    assert_eq!(writes[0].bool_attr("text.truncated"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn pie_non_pie_and_stripped_binaries() {
    support::needs_root!();
    let s = Scenario::start().await;
    let pie = s.calls("pie", &["-fPIE", "-pie"]);
    let non_pie = s.calls("nonpie", &["-fno-PIE", "-no-pie"]);
    for binary in [&pie, &non_pie] {
        let functions = json!([
            {
                "symbol": "recurse",
                "args": [{ "index": 0, "type": "i64" }],
                "return": { "type": "i64" },
            },
        ]);
        let config = s.config(binary, functions);
        let _ = s
            .trace_ok(&config, &[binary.to_str().unwrap(), "recurse", "3"])
            .await;
    }
    // Stripped: by file offset and by address, both found with `spanprobe symbols` on an
    // unstripped copy.
    let address = symbol_address(&non_pie, "tick").await;
    let offset = symbol_address(&pie, "tick").await;
    let stripped_pie = s.path().join("pie-stripped");
    let stripped_non_pie = s.path().join("nonpie-stripped");
    for (from, to) in [(&pie, &stripped_pie), (&non_pie, &stripped_non_pie)] {
        assert!(
            std::process::Command::new("strip")
                .arg("-o")
                .arg(to)
                .arg(from)
                .status()
                .unwrap()
                .success()
        );
    }
    let tick = |at: &str, place: u64| {
        json!([{
            at: place,
            "span_name": "tick",
            "args": [{ "index": 0, "type": "i64" }],
        }])
    };
    let config = s.config(&stripped_pie, tick("offset", offset));
    let _ = s
        .trace_ok(&config, &[stripped_pie.to_str().unwrap(), "serve", "2"])
        .await;
    let config = s.config(&stripped_non_pie, tick("address", address));
    let command = [stripped_non_pie.to_str().unwrap(), "serve", "2"];
    let (_, spans) = s.trace_ok(&config, &command).await;

    // 3 recursion levels in each of two binaries, 2 ticks in each of two stripped ones.
    let mut recursion: Vec<_> = named(&spans, "recurse")
        .iter()
        .map(|s| {
            (
                s.int_attr("arg0").unwrap(),
                s.int_attr("return_value").unwrap(),
            )
        })
        .collect();
    recursion.sort();
    assert_eq!(recursion, [(1, 1), (1, 1), (2, 2), (2, 2), (3, 3), (3, 3)]);
    let ticks = named(&spans, "tick");
    assert_eq!(ticks.len(), 4);
    assert!(ticks.iter().all(|t| {
        t.str_attr("code.function.name")
            .is_some_and(|n| n.starts_with("offset 0x") || n.starts_with("address 0x"))
    }));
    let mut args: Vec<_> = ticks.iter().map(|t| t.int_attr("arg0").unwrap()).collect();
    args.sort();
    assert_eq!(args, [0, 0, 1, 1]);
}

/// The address `spanprobe symbols` shows for `function` of `binary` (for a PIE, its file offset).
async fn symbol_address(binary: &Path, function: &str) -> u64 {
    let symbols = support::spanprobe_with(&["symbols", binary.to_str().unwrap(), function]).await;
    support::stdout(&symbols)
        .split_whitespace()
        .next()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .expect("symbols shows the address")
}

/// `run -- CMD` traces the processes CMD starts too, from their first call: through a shell
/// (fork and exec), and a fork that calls at once without exec.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_s_children_are_traced_from_their_first_call() {
    support::needs_root!();
    let (mut s, calls) = Scenario::with_calls("calls-children", &[]).await;

    let script = format!("{} threads 1; true", calls.display());
    let config = s.config(&calls, chain(&[]));
    let (_, spans) = s.trace_ok(&config, &["sh", "-c", &script]).await;
    assert_eq!(
        named(&spans, "outer").len(),
        20,
        "the shell's child was traced"
    );
    assert_eq!(spans.len(), 60);

    s.receiver = Receiver::start().await;
    let config = s.config(&calls, chain(&[]));
    let (_, spans) = s
        .trace_ok(&config, &[calls.to_str().unwrap(), "fork"])
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

#[tokio::test(flavor = "multi_thread")]
async fn shared_libraries_ours_by_path_and_libc_by_name() {
    support::needs_root!();
    let s = Scenario::start().await;
    let (library, user) = s.greet();
    let functions = json!([{
        "symbol": "greet_len",
        "args": [{ "index": 0, "name": "name", "type": "str" }],
        "return": { "type": "i32" },
    }]);
    let (_, spans) = s
        .trace_ok(&s.config(&library, functions), &[user.to_str().unwrap()])
        .await;
    let mut greeted: Vec<_> = spans
        .iter()
        .map(|s| {
            (
                s.str_attr("name").unwrap().to_owned(),
                s.int_attr("return_value").unwrap(),
            )
        })
        .collect();
    greeted.sort();
    assert_eq!(
        greeted,
        [("spanprobe".to_owned(), 9), ("world".to_owned(), 5)]
    );

    // libc by its bare name, traced in the command's process only.
    let calls = s.calls("calls", &[]);
    let functions = json!([{
        "symbol": "getaddrinfo",
        "args": [{ "index": 0, "name": "node", "type": "str" }],
        "return": { "type": "i32" },
    }]);
    let config = s.config("libc.so.6", functions);
    let (_, spans) = s
        .trace_ok(&config, &[calls.to_str().unwrap(), "resolve"])
        .await;
    let lookups = named(&spans, "getaddrinfo");
    assert_eq!(lookups.len(), 1, "only the traced command's call");
    assert_eq!(lookups[0].str_attr("node"), Some("localhost"));
    assert_eq!(lookups[0].int_attr("return_value"), Some(0));
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
    let spans = s.receiver.wait_for_spans(6, WAIT).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn sampling_keeps_or_drops_whole_traces() {
    support::needs_root!();
    let functions = json!([
        {
            "symbol": "outer",
            "sample_rate": 0.5,
            "args": [{ "index": 0, "name": "x", "type": "i64" }],
        },
        { "symbol": "middle" },
        { "symbol": "inner", "sample_rate": 0 },
    ]);
    let (_, spans) = trace_calls(functions, &["threads", "4"]).await;
    // About half of the 80 traces are kept (5 standard deviations either way), each whole:
    // the inner calls' own rate 0 does not matter, the root's decides.
    let kept = named(&spans, "outer").len();
    assert!((18..=62).contains(&kept), "{kept} of 80 traces kept");
    assert_eq!(named(&spans, "middle").len(), kept);
    assert_eq!(named(&spans, "inner").len(), kept);
    let ids = by_id(&spans);
    for inner in named(&spans, "inner") {
        assert_eq!(
            ids[&ids[&inner.span.parent_span_id].span.parent_span_id].name(),
            "outer"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lower_depth_limit_is_honoured() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let functions =
        json!([{ "symbol": "recurse", "args": [{ "index": 0, "name": "depth", "type": "i64" }] }]);
    let mut config = s.config(&calls, functions);
    config["limits"] = json!({ "max_depth": 4 });
    let (output, spans) = s
        .trace_ok(&config, &[calls.to_str().unwrap(), "recurse", "10"])
        .await;
    let mut depths: Vec<_> = spans
        .iter()
        .map(|span| {
            span.int_attr("depth")
                .unwrap_or_else(|| panic!("a span without `depth`: {span:?}"))
        })
        .collect();
    depths.sort();
    assert_eq!(depths, [7, 8, 9, 10]);
    assert_stderr_has(&output, "depth_exceeded=6");
}

#[tokio::test(flavor = "multi_thread")]
async fn go_functions_get_entry_only_spans() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.fake_go();
    let config = s.config(&binary, symbols(&["handler"]));
    let (_, spans) = s.trace_ok(&config, &[binary.to_str().unwrap()]).await;
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span.bool_attr("spanprobe.entry_only"), Some(true));
        assert_eq!(span.span.start_time_unix_nano, span.span.end_time_unix_nano);
        assert!(span.span.status.as_ref().is_none_or(|s| s.code == 0));
    }
}

/// Runs `command` under the config `init` wrote (`text`, kept as text: it is `init`'s output
/// that is tried), exporting to the scenario's receiver.
async fn trace_init_config(
    s: &Scenario,
    text: &str,
    command: &[&str],
) -> (Output, Vec<ReceivedSpan>) {
    let exporter = format!(
        "exporter:\n  otlp: {{ endpoint: \"{}\" }}\nprobes:",
        s.receiver.grpc_endpoint()
    );
    let config = s.write_yaml(&text.replacen("probes:", &exporter, 1));
    let output = support::run(&config, command).await;
    assert_exit(&output, 0);
    (output, s.receiver.spans())
}

/// `init` places each argument where the System V convention puts it, from DWARF: no integer
/// slot for a double, two for a struct of two integers (offered as its members), none for a
/// large struct by value, the first for a large return value's hidden pointer. The spans of
/// `init`'s config carry exactly what the program received.
#[tokio::test(flavor = "multi_thread")]
async fn init_places_arguments_by_the_calling_convention() {
    support::needs_root!();
    let s = Scenario::start().await;
    let abi = support::compile_c(&support::programs().join("abi.c"), s.path(), "abi", &[]);
    let init =
        support::spanprobe_with(&["init", abi.to_str().unwrap(), "after_*", "make_big"]).await;
    assert_eq!(init.status.code(), Some(0), "{}", support::stderr(&init));
    let text = support::stdout(&init);
    for expected in [
        "- { index: 0, name: n, type: i64 }  # long",
        "- { index: 1, name: s, type: str }  # const char *",
        "# d (double): in an XMM register, which uprobes do not capture",
        "- { index: 0, name: p.a, type: i64 }  # struct pair, .a",
        "- { index: 1, name: p.b, type: str }  # struct pair, .b",
        "- { index: 2, name: n, type: i64 }  # long",
        "# b (struct big): copied onto the stack (4 eightbytes from index 6): not captured",
        "- { index: 1, name: n, type: i64 }  # long",
        "# RDI holds the hidden pointer to the return value's space",
        "return: { type: ptr }  # struct big, returned in memory: RAX holds its address",
        "# m (struct mixed): one integer and one XMM register: not captured",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }

    let (output, spans) = trace_init_config(&s, &text, &[abi.to_str().unwrap()]).await;
    let printed = support::stdout(&output);
    let span = |name: &str| {
        let found = named(&spans, name);
        assert_eq!(found.len(), 1, "{name}");
        found[0]
    };
    assert!(printed.contains("after_double n=7 s=seven"), "{printed}");
    assert_eq!(span("after_double").int_attr("n"), Some(7));
    assert_eq!(span("after_double").str_attr("s"), Some("seven"));
    assert!(
        printed.contains("after_pair p.a=41 p.b=pair n=8"),
        "{printed}"
    );
    assert_eq!(span("after_pair").int_attr("p.a"), Some(41));
    assert_eq!(span("after_pair").str_attr("p.b"), Some("pair"));
    assert_eq!(span("after_pair").int_attr("n"), Some(8));
    assert_eq!(span("make_big").int_attr("n"), Some(9));
    assert_eq!(span("after_big").int_attr("n"), Some(10));
    assert_eq!(span("after_mixed").int_attr("n"), Some(11));
}

/// A C++ method's `this` is its first slot; `init` writes it so, from DWARF's artificial first
/// parameter, and the method's own arguments follow.
#[tokio::test(flavor = "multi_thread")]
async fn init_counts_cpp_this_as_the_first_slot() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.shapes();
    let init = support::spanprobe_with(&["init", binary.to_str().unwrap(), "*scaled"]).await;
    let text = support::stdout(&init);
    assert!(
        text.contains("- { index: 0, name: this, type: ptr }")
            && text.contains("- { index: 1, name: k, type: i64 }"),
        "{text}"
    );
    let (_, spans) = trace_init_config(&s, &text, &[binary.to_str().unwrap()]).await;
    let scaled = named(&spans, "shapes::Square::scaled");
    assert_eq!(scaled.len(), 1);
    assert_eq!(scaled[0].int_attr("k"), Some(7));
    assert_eq!(scaled[0].int_attr("return_value"), Some(35));
}

/// The output of `command` with its pid (`demo[PID]`) taken out.
fn without_pid(output: &Output) -> String {
    let out = support::stdout(output);
    match (out.find('['), out.find(']')) {
        (Some(open), Some(close)) => format!("{}{}", &out[..open], &out[close..]),
        _ => out,
    }
}

/// The ELF entry point is jumped to, not called: `[rsp]` holds argc, which a return probe
/// would overwrite. It gets an entry-only span, a `return` there is refused, `init` leaves it
/// out, and a program probed by `init`'s whole config runs as without spanprobe.
#[tokio::test(flavor = "multi_thread")]
async fn the_entry_point_gets_no_return_probe() {
    support::needs_root!();
    let s = Scenario::start().await;
    let demo = s.demo();
    let unprobed = std::process::Command::new(&demo).arg("2").output().unwrap();

    let command = [demo.to_str().unwrap(), "2"];
    let config = s.config(&demo, symbols(&["_start", "inner"]));
    let (output, spans) = s.trace_ok(&config, &command).await;
    assert_eq!(without_pid(&output), without_pid(&unprobed));
    let start = named(&spans, "_start");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].bool_attr("spanprobe.entry_only"), Some(true));
    assert_eq!(named(&spans, "inner").len(), 2);

    let config = s.config(
        &demo,
        json!([{ "symbol": "_start", "return": { "type": "i64" } }]),
    );
    let (output, _) = s.trace(&config, &command).await;
    assert_eq!(output.status.code(), Some(2));
    assert_stderr_has(&output, "`_start` is the program's entry point");

    // `init`'s config for the whole binary: every function but the entry point.
    let init = support::spanprobe_with(&["init", demo.to_str().unwrap()]).await;
    let config_text = support::stdout(&init);
    assert!(config_text.contains("# Left out: _start"), "{config_text}");
    assert!(!config_text.contains("symbol: _start"), "{config_text}");
    assert!(config_text.contains("symbol: main"), "{config_text}");
    let config_path = s.write_yaml(&config_text);
    let output = support::run(&config_path, &command).await;
    assert_exit(&output, 0);
    assert_eq!(without_pid(&output), without_pid(&unprobed));
}

/// A stripped program from the system, probed at its entry point by file offset: it runs as
/// without spanprobe, and its standard output (gzip's compressed data) holds no span line.
#[tokio::test(flavor = "multi_thread")]
async fn a_system_program_probed_at_its_entry_runs_unharmed() {
    support::needs_root!();
    use object::{Object as _, ObjectSegment as _};
    let gzip = Path::new("/usr/bin/gzip");
    let data = std::fs::read(gzip).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    let entry = elf.entry();
    let offset = elf
        .segments()
        .find(|s| (s.address()..s.address() + s.size()).contains(&entry))
        .map(|s| entry - s.address() + s.file_range().0)
        .unwrap();
    let dir = Workdir::new();
    let input = dir.path().join("input.txt");
    let text = "spanprobe ".repeat(1000);
    std::fs::write(&input, &text).unwrap();
    // The default exporter: lines on standard error.
    let config = json!({ "probes": [probe(gzip, json!([{ "offset": offset }]))] });
    let output = dir
        .run(&config, &["gzip", "-c", input.to_str().unwrap()])
        .await;
    let stderr = support::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let mut decompressed = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&output.stdout[..]),
        &mut decompressed,
    )
    .unwrap();
    assert_eq!(decompressed, text);
    let spans: Vec<_> = stderr.lines().filter(|l| l.contains(" trace=")).collect();
    assert_eq!(spans.len(), 1, "{stderr}");
    assert!(spans[0].contains("spanprobe.entry_only=true"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn min_duration_drops_short_spans_with_their_children() {
    support::needs_root!();
    // Every call takes microseconds: an hour's minimum on outer drops its whole tree, inner's
    // own zero minimum notwithstanding; recurse's zero minimum keeps all of it.
    let functions = json!([
        { "symbol": "outer", "min_duration": "1h" },
        { "symbol": "middle" },
        { "symbol": "inner", "min_duration": "0s" },
        { "symbol": "recurse", "min_duration": "0ns" },
    ]);
    let (output, spans) = trace_calls(functions, &["recurse", "3"]).await;
    // recurse(3) keeps its three levels; outer(1) and everything under it go.
    let names: Vec<_> = spans.iter().map(|s| s.name().to_owned()).collect();
    assert_eq!(names, ["recurse", "recurse", "recurse"], "{names:?}");
    assert_stderr_has(&output, "below_min_duration=3");
}

/// `symbol` with its argument `x` and its return value, both i64.
fn x_and_return(symbol: &str) -> Value {
    json!({
        "symbol": symbol,
        "args": [{ "index": 0, "name": "x", "type": "i64" }],
        "return": { "type": "i64" },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_calls_between_probed_functions_pair_up() {
    support::needs_root!();
    let functions = chain(&[x_and_return("tail_outer"), x_and_return("tail_inner")]);
    let (output, spans) = trace_calls(functions, &["tailcall"]).await;
    assert!(all_returned(&spans), "no call is taken for unwound");
    // tail_outer jumped to tail_inner: both return together, with tail_inner's value.
    let outer_tail = named(&spans, "tail_outer")[0];
    let inner_tail = named(&spans, "tail_inner")[0];
    assert_eq!(inner_tail.span.parent_span_id, outer_tail.span.span_id);
    assert_eq!(
        (
            inner_tail.int_attr("x"),
            inner_tail.int_attr("return_value")
        ),
        (Some(2), Some(6))
    );
    assert_eq!(outer_tail.int_attr("return_value"), Some(6));
    // The calls after it pair up as usual.
    let ids = by_id(&spans);
    let inner = named(&spans, "inner")[0];
    let middle = ids[&inner.span.parent_span_id];
    assert_eq!(
        (middle.name(), ids[&middle.span.parent_span_id].name()),
        ("middle", "outer")
    );
    assert_stderr_has(&output, "lost=0");
}

/// Built with `-fcf-protection`, functions start with `endbr64`, which the kernel single-steps
/// on every call (~20 times the cost of an emulated `push`). Where a push follows, the probes go
/// just past it, see the same registers and stack, and every value comes out the same.
#[tokio::test(flavor = "multi_thread")]
async fn functions_starting_with_endbr64_are_probed_past_it() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-cet", &["-fcf-protection=full"]).await;
    let mut inner = x_and_return("inner");
    inner["stack"] = json!(true);
    let config = s.config(
        &calls,
        json!([x_and_return("outer"), x_and_return("middle"), inner]),
    );

    // outer and middle have a frame (endbr64; push %rbp): probed 4 bytes in. inner is a leaf
    // (endbr64; lea): probed at its entry, as there is nothing to gain past it.
    let config_path = s.write(&config);
    let check = support::spanprobe_with(&["check", "-c", config_path.to_str().unwrap()]).await;
    assert_eq!(check.status.code(), Some(0), "{}", support::stderr(&check));
    let report = support::stdout(&check);
    for (function, skip) in [("outer", 4), ("middle", 4), ("inner", 0)] {
        let address = symbol_address(&calls, function).await;
        // A PIE's code is at the same offsets in the file as in its address space.
        // Where the probe stays on `endbr64`, check says the kernel single-steps it.
        let expected = format!(
            "  {function}: {function} at address {address:#x}, file offset {:#x}{}",
            address + skip,
            if skip > 0 {
                " (+4 past endbr64);"
            } else {
                ", first instruction `endbr64` single-stepped by the kernel (a second trap per \
                 call, "
            }
        );
        let line = report.lines().find(|line| line.starts_with(&expected));
        assert!(line.is_some(), "{expected:?} not in\n{report}");
        // What that trap costs here, measured as check runs.
        if skip == 0 {
            assert!(line.is_some_and(|line| line.contains(" µs here, inside the span);")));
        }
    }

    let (output, spans) = s
        .trace_ok(&config, &[calls.to_str().unwrap(), "chain-wait"])
        .await;
    assert_stderr_has(&output, "lost=0");
    assert_eq!(spans.len(), 3);
    let ids = by_id(&spans);
    // outer(1) -> middle(1) -> inner(2) = 4, middle returns 5, outer 6.
    let inner = named(&spans, "inner")[0];
    let middle = ids[&inner.span.parent_span_id];
    let outer = ids[&middle.span.parent_span_id];
    for (span, name, x, ret) in [
        (inner, "inner", 2, 4),
        (middle, "middle", 1, 5),
        (outer, "outer", 1, 6),
    ] {
        assert_eq!(span.name(), name);
        assert_eq!(
            (span.int_attr("x"), span.int_attr("return_value")),
            (Some(x), Some(ret)),
            "{name}"
        );
        assert_eq!(incomplete(span), None);
    }
    assert!(outer.span.parent_span_id.is_empty());
    // The stack reads as without probes: no trampoline in place of middle's and outer's return
    // addresses, inner's caller included.
    let stack: Vec<&str> = inner
        .str_attr("code.stacktrace")
        .expect("code.stacktrace")
        .lines()
        .collect();
    for (frame, function) in stack.iter().zip(["inner", "middle", "outer", "main"]) {
        assert!(
            frame.starts_with(&format!("{function} (")) && frame.contains("calls.c:"),
            "{frame:?} is not {function} in calls.c: {stack:?}"
        );
    }
}

/// The numbers spanprobe reports at exit, as `key=value` pairs of its log lines.
fn reported(stderr: &str, key: &str) -> u64 {
    let marker = format!(" {key}=");
    let at = stderr
        .rfind(&marker)
        .unwrap_or_else(|| panic!("no {key} in {stderr}"));
    stderr[at + marker.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Asserts that spanprobe's report at exit (in `stderr`) has all `n` spans exported and none
/// dropped, after retrying; `what` names the case.
fn assert_exported_after_retries(stderr: &str, n: u64, what: &str) {
    assert_eq!(reported(stderr, "exported"), n, "{what}: {stderr}");
    assert_eq!(reported(stderr, "dropped"), 0, "{what}: {stderr}");
    assert!(stderr.contains("retrying with backoff"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_losses_are_counted_to_the_last_call() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    // A 4 KiB ring holds a few dozen events: most of 20000 calls cannot be delivered.
    let functions = json!([{
        "symbol": "inner",
        "args": [{ "index": 0, "name": "x", "type": "i64" }],
        "return": { "type": "i64" },
    }]);
    let mut config = s.config(&calls, functions);
    config["limits"] = json!({ "ring_buffer_size": 4096 });
    let (stderr, spans) = bench_calls(&s, &config, &calls, "20000").await;
    let lost = reported(&stderr, "ring_buffer_full");
    assert!(lost > 0, "{stderr}");
    // The ring wrapped hundreds of times, with records across its end (they are not a divisor
    // of its size): each delivered one reads back whole, and once.
    let mut calls_seen: Vec<(i64, i64)> = spans
        .iter()
        .map(|span| {
            (
                span.int_attr("x").unwrap(),
                span.int_attr("return_value").unwrap(),
            )
        })
        .collect();
    assert!(
        calls_seen
            .iter()
            .all(|&(x, ret)| (0..20000).contains(&x) && ret == 2 * x)
    );
    let received = calls_seen.len();
    calls_seen.sort_unstable();
    calls_seen.dedup();
    assert_eq!(calls_seen.len(), received, "a call delivered twice");
    assert_eq!(
        spans.len() as u64 + lost,
        20000,
        "exported + lost = calls; {stderr}"
    );
    assert_eq!(reported(&stderr, "exported"), spans.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_outage_is_ridden_out_and_accounted_for() {
    support::needs_root!();
    let s = Scenario::start().await;
    let (grpc_port, http_port) = s.receiver.ports();
    let calls = s.calls("calls-outage", &[]);
    // A short request timeout, so that requests fail while the backend is away and are
    // retried, rather than waiting in the gRPC channel for it to come back.
    let mut config = s.config(&calls, symbols(&["inner"]));
    config["batch"] = json!({ "delay": "10ms" });
    config["exporter"]["otlp"]["timeout"] = json!("200ms");
    let tracer = s.sidecar(&config).await;
    let run = |n: &'static str| {
        let calls = calls.clone();
        async move {
            assert!(
                tokio::process::Command::new(&calls)
                    .args(["bench", n])
                    .output()
                    .await
                    .unwrap()
                    .status
                    .success()
            )
        }
    };
    run("50").await;
    assert_eq!(s.receiver.wait_for_spans(50, WAIT).await.len(), 50);
    // The backend goes away while calls go on; the traced program is not held up.
    s.receiver.stop().await;
    run("100").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // It comes back on the same port: what was waiting in the queue is delivered.
    let receiver = Receiver::start_on(grpc_port, http_port).await;
    let arrived = receiver.wait_for_spans(100, Duration::from_secs(20)).await;
    let stderr = tracer.stop().await;
    assert_eq!(arrived.len(), 100, "{stderr}");
    // produced = exported + dropped: nothing was dropped, all 150 were exported.
    assert_exported_after_retries(&stderr, 150, "outage");
    assert!(
        stderr.contains("export failed; retrying with backoff"),
        "{stderr}"
    );
    assert!(stderr.contains("export recovered"), "{stderr}");
}

/// `inner` of `calls`, exported over `protocol` (`grpc` or `http/protobuf`) with a batch delay
/// of `delay`.
fn config_over(s: &Scenario, calls: &Path, protocol: &str, delay: &str) -> Value {
    let mut config = s.config_over(calls, symbols(&["inner"]), protocol);
    config["batch"] = json!({ "delay": delay });
    config
}

/// A long batch delay: every span goes in the one request the final flush sends.
const ONE_REQUEST: &str = "5s";

/// Runs `calls bench n` under spanprobe with `config`, which must succeed; returns spanprobe's
/// stderr and the spans received.
async fn bench_calls(
    s: &Scenario,
    config: &Value,
    calls: &Path,
    n: &str,
) -> (String, Vec<ReceivedSpan>) {
    let (output, spans) = s
        .trace_ok(config, &[calls.to_str().unwrap(), "bench", n])
        .await;
    (support::stderr(&output), spans)
}

/// Runs `test` once per transport (`grpc`, then `http/protobuf`), each time against a fresh
/// receiver, with `calls.c` built once as `name`: `test(scenario, calls, protocol)`.
async fn on_each_transport(name: &str, test: impl AsyncFn(&Scenario, &Path, &str)) {
    let (mut s, calls) = Scenario::with_calls(name, &[]).await;
    for protocol in ["grpc", "http/protobuf"] {
        s.receiver = Receiver::start().await;
        test(&s, &calls, protocol).await;
    }
}

/// The transport `protocol` (as `config_over` takes it) arrives on.
fn transport(protocol: &str) -> support::receiver::Protocol {
    match protocol {
        "grpc" => support::receiver::Protocol::Grpc,
        _ => support::receiver::Protocol::Http,
    }
}

/// Headers from the config reach the backend with every request, and `compression: gzip`
/// compresses the requests, on both transports.
#[tokio::test(flavor = "multi_thread")]
async fn headers_and_gzip_reach_the_backend() {
    support::needs_root!();
    on_each_transport("calls-headers", async |s, calls, protocol| {
        let mut config = config_over(s, calls, protocol, ONE_REQUEST);
        let otlp = &mut config["exporter"]["otlp"];
        otlp["compression"] = json!("gzip");
        otlp["headers"] = json!({ "X-Tenant": "t1", "authorization": "Bearer secret" });
        let (stderr, spans) = bench_calls(s, &config, calls, "20").await;
        assert_eq!(spans.len(), 20, "{protocol}: {stderr}");
        assert!(spans.iter().all(|s| s.protocol == transport(protocol)));
        let requests = s.receiver.request_headers();
        assert!(!requests.is_empty());
        for (arrived_on, headers) in requests {
            assert_eq!(arrived_on, transport(protocol));
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            assert_eq!(header("x-tenant"), Some("t1"), "{protocol}: {headers:?}");
            assert_eq!(header("authorization"), Some("Bearer secret"));
            let encoding = match protocol {
                "grpc" => "grpc-encoding",
                _ => "content-encoding",
            };
            assert_eq!(header(encoding), Some("gzip"), "{protocol}: {headers:?}");
        }
        assert!(
            !stderr.contains("secret"),
            "header values are never logged: {stderr}"
        );
    })
    .await;
}

/// A backend that refuses a request as malformed is not asked again (the OTLP
/// specification's rule): the spans are counted as failed at once, with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_is_not_retried_and_its_spans_are_counted() {
    support::needs_root!();
    on_each_transport("calls-refused", async |s, calls, protocol| {
        s.receiver.answer(Answer::Refuse);
        let config = config_over(s, calls, protocol, ONE_REQUEST);
        let (stderr, spans) = bench_calls(s, &config, calls, "40").await;
        assert!(spans.is_empty(), "{protocol}");
        assert_eq!(reported(&stderr, "exported"), 0, "{protocol}: {stderr}");
        assert_eq!(
            reported(&stderr, "export_failed"),
            40,
            "{protocol}: {stderr}"
        );
        let reason = match protocol {
            "grpc" => "gRPC status InvalidArgument: receiver: refused",
            _ => "HTTP status 400 Bad Request: receiver: refused",
        };
        assert!(stderr.contains(reason), "{protocol}: {stderr}");
        assert!(!stderr.contains("retrying"), "{protocol}: {stderr}");
        assert_eq!(
            s.receiver.refused(),
            1,
            "one request, never repeated: {stderr}"
        );
    })
    .await;
}

/// A backend that says it is unavailable (HTTP 503 with Retry-After, gRPC UNAVAILABLE) is
/// asked again until it takes the spans.
#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_backend_is_asked_again_until_it_accepts() {
    support::needs_root!();
    on_each_transport("calls-unavailable", async |s, calls, protocol| {
        let receiver = &s.receiver;
        receiver.answer(Answer::Unavailable);
        let tracer = s.sidecar(&config_over(s, calls, protocol, "10ms")).await;
        let status = tokio::process::Command::new(calls)
            .args(["bench", "25"])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + WAIT;
        while receiver.refused() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{protocol}: no retry"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        receiver.answer(Answer::Accept);
        assert_eq!(
            receiver.wait_for_spans(25, WAIT).await.len(),
            25,
            "{protocol}"
        );
        let stderr = tracer.stop().await;
        assert_exported_after_retries(&stderr, 25, protocol);
    })
    .await;
}

/// A slow backend does not hold the export up one request at a time: a few requests are in
/// flight at once, and no more than that.
#[tokio::test(flavor = "multi_thread")]
async fn requests_to_a_slow_backend_overlap() {
    support::needs_root!();
    on_each_transport("calls-slow-backend", async |s, calls, protocol| {
        s.receiver.answer_after(Duration::from_millis(300));
        let mut config = config_over(s, calls, protocol, "1ms");
        config["batch"]["batch_size"] = json!(10);
        let (stderr, spans) = bench_calls(s, &config, calls, "200").await;
        assert_eq!(spans.len(), 200, "{protocol}: {stderr}");
        assert!(spans.iter().all(|s| s.protocol == transport(protocol)));
        let most = s.receiver.most_held();
        assert!(
            (2..=4).contains(&most),
            "{protocol}: {most} requests at once"
        );
    })
    .await;
}

/// An OTLP partial success: the request is accepted, but the spans the backend says it
/// rejected are counted as lost, not as exported.
#[tokio::test(flavor = "multi_thread")]
async fn spans_a_backend_rejects_in_an_accepted_request_are_counted() {
    support::needs_root!();
    on_each_transport("calls-partial", async |s, calls, protocol| {
        s.receiver.answer(Answer::PartiallyAccept {
            rejected: 3,
            message: "3 spans over quota".into(),
        });
        let config = config_over(s, calls, protocol, ONE_REQUEST);
        let (stderr, spans) = bench_calls(s, &config, calls, "40").await;
        assert_eq!(spans.len(), 40, "{protocol}");
        assert!(spans.iter().all(|s| s.protocol == transport(protocol)));
        assert_eq!(s.receiver.requests(), 1, "{protocol}: {stderr}");
        assert_eq!(reported(&stderr, "exported"), 37, "{protocol}: {stderr}");
        assert_eq!(
            reported(&stderr, "export_failed"),
            3,
            "{protocol}: {stderr}"
        );
        assert!(
            stderr.contains("3 spans over quota"),
            "{protocol}: {stderr}"
        );
    })
    .await;
}

/// GETs `/metrics` from `address` and returns the body.
async fn scrape(address: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("metrics listening");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: spanprobe\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4"),
        "{response}"
    );
    response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_in_prometheus_text() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-metrics", &[]).await;
    // A free port: bind, note it, let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut config = s.config(&calls, symbols(&["inner"]));
    config["metrics"] = json!({ "listen": address });
    config["batch"] = json!({ "delay": "10ms" });
    let tracer = s.sidecar(&config).await;
    assert!(
        tokio::process::Command::new(&calls)
            .args(["bench", "30"])
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    assert_eq!(s.receiver.wait_for_spans(30, WAIT).await.len(), 30);
    let mut body = String::new();
    for _ in 0..50 {
        body = scrape(&address).await;
        if body.contains("spanprobe_spans_exported_total 30\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in [
        "# TYPE spanprobe_events_read_total counter",
        "spanprobe_events_read_total 30",
        "spanprobe_spans_exported_total 30",
        "spanprobe_spans_dropped_total{reason=\"queue_full\"} 0",
        "spanprobe_spans_dropped_total{reason=\"ring_buffer_full\"} 0",
        "spanprobe_probes_attached 2",
        "spanprobe_queue_depth 0",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
    tracer.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_progress_at_shutdown_are_reported() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-slow", &[]).await;
    let tracer = s.sidecar(&s.config(&calls, symbols(&["slow"]))).await;
    let mut sleeper = tokio::process::Command::new(&calls)
        .args(["slow", "3000"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stderr = tracer.stop().await;
    assert!(
        stderr.contains("1 calls were still in progress at shutdown and are not exported"),
        "{stderr}"
    );
    let _ = sleeper.kill().await;
}
