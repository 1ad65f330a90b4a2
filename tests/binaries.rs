//! Kinds of binaries and where in them probes go: PIE and non-PIE, stripped (by offset and
//! address), shared libraries (ours by path, libc by name), the ELF entry point, a system
//! program, functions starting with `endbr64`.

mod support;

use std::{path::Path, process::Output};

use serde_json::json;
use support::{
    scenario::{
        Scenario, Workdir, assert_exit, assert_stderr_has, by_id, incomplete, named, probe,
        symbols, x_and_return,
    },
    symbol_address,
};

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
            .trace(&config, &[binary.to_str().unwrap(), "recurse", "3"])
            .exits(0)
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
        .trace(&config, &[stripped_pie.to_str().unwrap(), "serve", "2"])
        .exits(0)
        .await;
    let config = s.config(&stripped_non_pie, tick("address", address));
    let command = [stripped_non_pie.to_str().unwrap(), "serve", "2"];
    let (_, spans) = s.trace(&config, &command).exits(0).await;

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
        .trace(&s.config(&library, functions), &[user.to_str().unwrap()])
        .exits(0)
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
        .trace(&config, &[calls.to_str().unwrap(), "resolve"])
        .exits(0)
        .await;
    let lookups = named(&spans, "getaddrinfo");
    assert_eq!(lookups.len(), 1, "only the traced command's call");
    assert_eq!(lookups[0].str_attr("node"), Some("localhost"));
    assert_eq!(lookups[0].int_attr("return_value"), Some(0));
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
    let (output, spans) = s.trace(&config, &command).exits(0).await;
    assert_eq!(without_pid(&output), without_pid(&unprobed));
    let start = named(&spans, "_start");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].bool_attr("spanprobe.entry_only"), Some(true));
    assert_eq!(named(&spans, "inner").len(), 2);

    let config = s.config(
        &demo,
        json!([{ "symbol": "_start", "return": { "type": "i64" } }]),
    );
    let (output, _) = s.trace(&config, &command).exits(2).await;
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
                " (+4 past `endbr64`, onto `push %rbp`, which the kernel emulates);"
            } else {
                ", first instruction `endbr64` single-stepped by the kernel (a second trap per \
                 call, "
            }
        );
        let line = report.lines().find(|line| line.starts_with(&expected));
        assert!(line.is_some(), "{expected:?} not in\n{report}");
        // What that trap costs here, measured as check runs, and why the probe stays: inner
        // is `endbr64; lea (%rdi,%rdi),%rax; ret`, with nothing the kernel emulates before
        // its return.
        if skip == 0 {
            assert!(
                line.is_some_and(|line| line.contains(
                    " µs here, inside the span), not moved: `ret` does not always run the next \
                     instruction;"
                )),
                "{line:?}"
            );
        }
    }

    let (output, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "chain-wait"])
        .exits(0)
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
