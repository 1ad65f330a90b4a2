//! `stack`: user stacks captured at entry, symbolized with blazesym, exported as
//! `code.stacktrace`, reading exactly as they would without spanprobe (no uretprobe
//! trampoline addresses, the immediate caller included): walked by frame pointers in the
//! kernel, or unwound in userspace by the unwind tables from a copy of the stack, for code
//! built without frame pointers.

mod support;

use std::path::{Path, PathBuf};

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
    let config = s.config(
        &calls,
        json!([{ "symbol": "inner", "stack": { "unwind": "fp" } }]),
    );
    let (_, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "chain-wait"])
        .exits(0)
        .await;
    let span = spans.iter().find(|s| s.name() == "inner").unwrap();
    assert_eq!(span.bool_attr("spanprobe.stack.truncated"), Some(true));
    assert!(
        span.attr("code.stacktrace").is_some(),
        "walked, not unwound: {span:#?}"
    );
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
                      "functions": [
                          { "symbol": "PyObject_Repr", "stack": { "unwind": "fp" } },
                          { "symbol": "PyObject_Str", "stack": true },
                          { "symbol": "PyObject_ASCII", "stack": { "unwind": "dwarf", "bytes": 4096 } },
                      ] }));
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
    // `auto` unwinds it from a copy of the stack instead.
    assert!(
        line("PyObject_Str:").contains(
            "unwound in userspace by the unwind tables from 16384 bytes of stack copied at \
             entry (this binary's code omits frame pointers)"
        ),
        "{text}"
    );
    // Asked for: no reason given.
    let ascii = line("PyObject_ASCII:");
    assert!(
        ascii.contains("from 4096 bytes of stack copied at entry") && !ascii.contains("omits"),
        "{text}"
    );
    let inner = line("inner:");
    assert!(inner.contains("stack of up to"), "{text}");
    assert!(inner.contains("walked by frame pointers"), "{text}");
    assert!(!inner.contains("omits"), "{text}");
}

/// `unwind.c` calling through `librelay.so` into `dir`, each built with frame pointers or
/// without.
fn build_relay_chain(dir: &Path, program_keeps: bool, library_keeps: bool) -> PathBuf {
    let frame_pointers = |keeps| {
        if keeps {
            "-fno-omit-frame-pointer"
        } else {
            "-fomit-frame-pointer"
        }
    };
    support::compile_c(
        &programs().join("relay.c"),
        dir,
        "librelay.so",
        &["-fPIC", "-shared", frame_pointers(library_keeps)],
    );
    support::compile_c(
        &programs().join("unwind.c"),
        dir,
        "unwind",
        &[
            &format!("-L{}", dir.display()),
            &format!("-Wl,-rpath,{}", dir.display()),
            "-lrelay",
            frame_pointers(program_keeps),
        ],
    )
}

/// The frames of the relay chain, innermost first, down to libc's start: each function at its
/// line.
fn assert_relay_chain(stack: &[&str]) {
    let unwind = programs().join("unwind.c");
    let frames = [
        ("leaf", "unwind.c", line_of(&unwind, "", "PROBED leaf")),
        (
            "relay",
            "relay.c",
            line_of(&programs().join("relay.c"), "", "RELAY CALL"),
        ),
        ("middle", "unwind.c", line_of(&unwind, "", "MIDDLE CALL")),
        ("outer", "unwind.c", line_of(&unwind, "", "OUTER CALL")),
        ("main", "unwind.c", line_of(&unwind, "", "MAIN CALL")),
    ];
    assert!(stack.len() > frames.len(), "{stack:#?}");
    for (at, (function, file, line)) in frames.into_iter().enumerate() {
        assert_frame(stack[at], function, file, line);
    }
    assert!(
        stack[frames.len()].starts_with("__libc_start_call_main ("),
        "{stack:#?}"
    );
}

/// A chain of calls built with `-O2 -fomit-frame-pointer`, through a shared library built
/// the same way: `stack: true` finds the program omits frame pointers and unwinds the stack
/// by its tables, whole, each frame at its line. Then mixed: a program keeping frame pointers
/// through a library without them, and the reverse, unwound by `unwind: dwarf`.
#[tokio::test(flavor = "multi_thread")]
async fn stacks_without_frame_pointers_are_unwound_whole_by_the_tables() {
    support::needs_root!();
    let s = Scenario::start().await;
    let cases = [
        (false, false, json!(true)),
        (true, false, json!({ "unwind": "dwarf" })),
        (false, true, json!({ "unwind": "dwarf" })),
    ];
    for (program_keeps, library_keeps, stack) in cases {
        let dir = s
            .path()
            .join(format!("relay-{program_keeps}-{library_keeps}"));
        std::fs::create_dir_all(&dir).unwrap();
        let unwind = build_relay_chain(&dir, program_keeps, library_keeps);
        let config = s.config(&unwind, json!([{ "symbol": "leaf", "stack": stack }]));
        let (_, spans) = s
            .trace(&config, &[unwind.to_str().unwrap(), "2"])
            .exits(0)
            .await;
        let leaves: Vec<_> = spans
            .iter()
            .filter(|span| span.name() == "leaf")
            .filter(|span| span.resource_str("process.executable.path") == unwind.to_str())
            .collect();
        assert_eq!(leaves.len(), 2, "{spans:#?}");
        for leaf in leaves {
            let stack: Vec<&str> = leaf.str_attr("code.stacktrace").unwrap().lines().collect();
            assert_relay_chain(&stack);
            assert_eq!(leaf.attr("spanprobe.stack.truncated"), None, "{leaf:#?}");
        }
    }
}

/// Debian's python3.11, built without frame pointers (and with LTO: its static functions
/// are named `*.lto_priv.0` by python3.11-dbg's symbols), running a small script: the spans
/// of `repr()` and of the list's repr inside it have stacks through the interpreter's frames
/// down to `Py_BytesMain` and the program's start (Debian's `main` jumps to `Py_BytesMain`,
/// leaving no frame of its own). The outer call is probed too: its return address, which the
/// uretprobe trampoline holds while it runs, is put back in the inner call's copy.
#[tokio::test(flavor = "multi_thread")]
async fn python_stacks_reach_the_program_s_start_through_the_interpreter() {
    support::needs_root!();
    let s = Scenario::start().await;
    let script = s.path().join("script.py");
    std::fs::write(
        &script,
        "import time\n\
         def inner(x):\n    return repr(x)\n\
         def outer(x):\n    return inner([x, 'spanprobe'])\n\
         outer(42)\n\
         time.sleep(0.5)\n",
    )
    .unwrap();
    let python = "/usr/bin/python3.11";
    let config = s.config(
        python,
        json!([
            { "symbol": "builtin_repr.lto_priv.0", "span_name": "repr", "stack": true },
            { "symbol": "list_repr.lto_priv.0", "span_name": "list_repr", "stack": true },
        ]),
    );
    let (_, spans) = s
        .trace(&config, &[python, "-S", script.to_str().unwrap()])
        .exits(0)
        .await;
    let [repr] = support::scenario::named(&spans, "repr")[..] else {
        panic!("one repr(): {spans:#?}")
    };
    let [list] = support::scenario::named(&spans, "list_repr")[..] else {
        panic!("one list repr: {spans:#?}")
    };
    assert_eq!(list.span.parent_span_id, repr.span.span_id);
    let list_stack = stack_of(&spans, "list_repr");
    let repr_stack = stack_of(&spans, "repr");
    assert!(list_stack[0].starts_with("list_repr ("), "{list_stack:#?}");
    // builtin_repr calls PyObject_Repr, inlined, which calls list_repr; below builtin_repr,
    // the same stack as repr()'s own.
    assert!(
        list_stack[1].starts_with("PyObject_Repr ("),
        "{list_stack:#?}"
    );
    assert!(
        list_stack[2].starts_with("builtin_repr ("),
        "{list_stack:#?}"
    );
    assert_eq!(list_stack[3..], repr_stack[1..], "{list_stack:#?}");
    let position = |name: &str| {
        repr_stack
            .iter()
            .position(|frame| frame.starts_with(&format!("{name} (")))
            .unwrap_or_else(|| panic!("no {name} in {repr_stack:#?}"))
    };
    assert_eq!(position("builtin_repr"), 0);
    // The interpreter runs the script's two functions in one _PyEval_EvalFrameDefault (3.11
    // inlines Python-to-Python calls), run for the module's code by the start-up.
    assert!(position("_PyEval_EvalFrameDefault") < position("PyEval_EvalCode"));
    assert!(position("PyEval_EvalCode") < position("Py_RunMain"));
    assert!(position("Py_RunMain") < position("Py_BytesMain"));
    assert!(position("Py_BytesMain") < position("__libc_start_call_main"));
    assert!(
        repr_stack.last().unwrap().starts_with("_start "),
        "{repr_stack:#?}"
    );
    for span in [repr, list] {
        assert_eq!(span.attr("spanprobe.stack.truncated"), None, "{span:#?}");
    }
}

/// A stack deeper than the copied window ends where the copy does, marked truncated: its
/// frames so far are right. With a window that holds it, the same stack is whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_stack_deeper_than_its_window_is_cut_there_and_marked() {
    support::needs_root!();
    let s = Scenario::start().await;
    let unwind = build_relay_chain(s.path(), false, false);
    let source = programs().join("unwind.c");
    // 40 frames of `descend`, each over 256 bytes: about 12 KiB.
    let mut stacks = Vec::new();
    for bytes in [4096, 16384] {
        let mut config = s.config(
            &unwind,
            json!([{ "symbol": "leaf", "stack": { "unwind": "dwarf", "bytes": bytes } }]),
        );
        config["limits"] = json!({ "stack_frames": 64 });
        let (_, spans) = s
            .trace(&config, &[unwind.to_str().unwrap(), "deep", "40"])
            .exits(0)
            .await;
        let leaf = spans
            .iter()
            .rev()
            .find(|span| span.name() == "leaf")
            .unwrap()
            .clone();
        stacks.push(leaf);
    }
    let [cut, whole] = &stacks[..] else {
        unreachable!()
    };
    let frames = |span: &support::receiver::ReceivedSpan| -> Vec<String> {
        span.str_attr("code.stacktrace")
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (cut_frames, whole_frames) = (frames(cut), frames(whole));
    let descend_line = line_of(&source, "", "DESCEND CALL");
    assert_frame(
        &cut_frames[0],
        "leaf",
        "unwind.c",
        line_of(&source, "", "PROBED leaf"),
    );
    // 4 KiB hold the leaf's frame and about 14 of descend's.
    assert!(
        cut_frames.len() > 5 && cut_frames.len() < 20,
        "{cut_frames:#?}"
    );
    for frame in &cut_frames[1..] {
        assert_frame(frame, "descend", "unwind.c", descend_line);
    }
    assert_eq!(cut.bool_attr("spanprobe.stack.truncated"), Some(true));
    // The whole stack: the leaf, 41 frames of descend, main, libc's start.
    assert_eq!(whole_frames[..cut_frames.len()], cut_frames[..]);
    assert_eq!(
        whole_frames
            .iter()
            .filter(|frame| frame.starts_with("descend ("))
            .count(),
        41,
        "{whole_frames:#?}"
    );
    assert_frame(
        &whole_frames[42],
        "main",
        "unwind.c",
        line_of(&source, "", "MAIN DEEP"),
    );
    assert_eq!(whole.attr("spanprobe.stack.truncated"), None, "{whole:#?}");
}
