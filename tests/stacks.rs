//! `stack: true`: user stacks captured at entry, symbolized with blazesym, exported as
//! `code.stacktrace`, reading exactly as they would without spanprobe (no uretprobe
//! trampoline addresses, the immediate caller included).

mod support;

use std::path::Path;

use serde_json::json;
use support::{programs, receiver::ReceivedSpan, scenario::Scenario};

/// The 1-based line of the first line of `file` containing `text`, after the line containing
/// `after`.
fn line_of(file: &Path, after: &str, text: &str) -> usize {
    let source = std::fs::read_to_string(file).unwrap();
    let start = source.lines().position(|l| l.contains(after)).unwrap();
    start
        + 1
        + source
            .lines()
            .skip(start)
            .position(|l| l.contains(text))
            .unwrap()
}

fn stack_of<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a str> {
    let span = spans.iter().find(|s| s.name() == name).expect("span");
    span.str_attr("code.stacktrace")
        .expect("code.stacktrace")
        .lines()
        .collect()
}

/// Asserts that `frame` is `function (…file:line)`.
fn assert_frame(frame: &str, function: &str, file: &str, line: usize) {
    assert!(
        frame.starts_with(&format!("{function} (")) && frame.ends_with(&format!("{file}:{line})")),
        "{frame:?} is not {function} at {file}:{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_chain_has_exact_frames_and_no_trampolines() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let functions = json!([
        { "symbol": "outer" },
        { "symbol": "middle" },
        { "symbol": "inner", "stack": true },
    ]);
    // chain-wait stays alive while its stack is read: shared libraries resolve too.
    let command = [calls.to_str().unwrap(), "chain-wait"];
    let (_, spans) = s
        .trace(&s.config(&calls, functions), &command)
        .exits(0)
        .await;
    let stack = stack_of(&spans, "inner");
    let source = programs().join("calls.c");
    // middle and outer are probed: their return addresses were the uretprobe's trampoline.
    let frames = [
        ("inner", "", "PROBED long inner"),
        ("middle", "", "PROBED long middle"),
        ("outer", "", "PROBED long outer"),
        ("main", "\"chain-wait\"", "outer(1);"),
    ];
    for (at, (function, after, text)) in frames.into_iter().enumerate() {
        assert_frame(
            stack[at],
            function,
            "calls.c",
            line_of(&source, after, text),
        );
    }
    assert!(
        stack[4].starts_with("__libc_start_call_main ("),
        "{stack:?}"
    );
    assert!(
        stack
            .iter()
            .all(|f| !f.starts_with("0x") || f.contains("libc")),
        "{stack:?}"
    );
}

/// tail_outer jumps to tail_inner, whose frame then has tail_outer's return slot, and main is
/// probed above both: each return slot shows its own real return address once, main's too.
#[tokio::test(flavor = "multi_thread")]
async fn a_tail_call_shows_each_return_slot_once() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let functions = json!([
        { "symbol": "main" },
        { "symbol": "tail_outer" },
        { "symbol": "tail_inner", "stack": true },
    ]);
    let command = [calls.to_str().unwrap(), "tailcall"];
    let (_, spans) = s
        .trace(&s.config(&calls, functions), &command)
        .exits(0)
        .await;
    let stack = stack_of(&spans, "tail_inner");
    let source = programs().join("calls.c");
    // tail_outer's frame is gone: it jumped away, leaving its return address to main.
    assert_frame(
        stack[0],
        "tail_inner",
        "calls.c",
        line_of(&source, "", "PROBED long tail_inner"),
    );
    assert_frame(
        stack[1],
        "main",
        "calls.c",
        line_of(&source, "\"tailcall\"", "tail_outer(1)"),
    );
    // main's caller in libc, in place of main's trampoline (not main's own return address
    // again). The process has exited: libc's frames stay addresses.
    assert!(
        stack.len() >= 3 && !stack[2].starts_with("main ("),
        "{stack:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_exited_before_export_still_gets_its_frames() {
    support::needs_root!();
    let s = Scenario::start().await;
    let demo = s.demo();
    let functions = json!([{ "symbol": "middle" }, { "symbol": "inner", "stack": true }]);
    // The demo exits at once: its own frames are placed from the probed function.
    let (_, spans) = s
        .trace(&s.config(&demo, functions), &[demo.to_str().unwrap(), "1"])
        .exits(0)
        .await;
    let stack = stack_of(&spans, "inner");
    let names: Vec<_> = stack
        .iter()
        .take(4)
        .map(|f| f.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["inner", "middle", "outer", "main"], "{stack:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_library_frames_and_their_caller() {
    support::needs_root!();
    let s = Scenario::start().await;
    let (library, user) = s.greet();
    let config = s.config(&library, json!([{ "symbol": "greet_len", "stack": true }]));
    let (_, spans) = s.trace(&config, &[user.to_str().unwrap()]).exits(0).await;
    let stack = stack_of(&spans, "greet_len");
    assert_frame(stack[0], "greet_len", "greet.c", 4);
    assert_frame(
        stack[1],
        "main",
        "use_greet.c",
        line_of(&programs().join("use_greet.c"), "", "greet_len(\"world\")"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cpp_frames_are_demangled() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.shapes();
    let config = s.config(
        &binary,
        json!([{ "symbol": "shapes::total_area", "stack": true }]),
    );
    let (_, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    // shapes.cpp throws through no probed function here, so it runs to the end.
    let stack = stack_of(&spans, "shapes::total_area");
    // Demangled as `check` and `symbols` show names: without the parameter list.
    assert!(stack[0].starts_with("shapes::total_area ("), "{stack:?}");
    assert!(stack[1].starts_with("main ("), "{stack:?}");
    // Whether or not the kernel adds the caller of a probe at a function's entry itself (it
    // does when the function starts with `push %rbp`), it appears once.
    assert!(!stack[2].starts_with("main ("), "{stack:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stacks_without_frame_pointers_are_marked_truncated() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &["-fomit-frame-pointer"]).await;
    let config = s.config(&calls, json!([{ "symbol": "inner", "stack": true }]));
    let (_, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "chain-wait"])
        .exits(0)
        .await;
    let span = spans.iter().find(|s| s.name() == "inner").unwrap();
    assert_eq!(span.bool_attr("spanprobe.stack.truncated"), Some(true));
    // The immediate caller comes from the return address at RSP, not the frame-pointer walk.
    let stack = stack_of(&spans, "inner");
    assert!(
        stack[0].starts_with("inner (") && stack[1].starts_with("middle ("),
        "{stack:?}"
    );
}

#[tokio::test]
async fn check_says_when_a_binary_omits_frame_pointers() {
    let s = Scenario::start().await;
    // Debian builds python3.11 without frame pointers; the test programs keep them.
    let calls = s.calls("calls", &[]);
    let mut config = s.config(&calls, json!([{ "symbol": "inner", "stack": true }]));
    config["probes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "binary": "/usr/bin/python3.11",
                      "functions": [{ "symbol": "PyObject_Repr", "stack": true }] }));
    let text = s.check(&config, 0).await;
    let line = |name: &str| {
        text.lines()
            .find(|line| line.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_owned()
    };
    let omitted = "walked by frame pointers, which this binary's code omits: it stops short, \
                   marked truncated";
    assert!(line("PyObject_Repr:").contains(omitted), "{text}");
    let inner = line("inner:");
    assert!(inner.contains("stack of up to"), "{text}");
    assert!(!inner.contains("omits"), "{text}");
}
