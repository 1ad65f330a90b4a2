//! The kernel matrix: the same scenarios on the host's kernel and, under QEMU, on each kernel
//! of `support::vm::matrix()` (Debian 12's 6.1 and its backported 6.12, prepared by
//! `scripts/kernels.sh`). Each machine runs all the cases of a test in one boot.
//!
//! One test proves the harness itself: each guest runs the right kernel, with BTF and uprobes,
//! runs host programs from their host paths with their shared libraries, runs spanprobe,
//! reaches an in-process receiver over the network, and its scripts' output, exit status and
//! time limit come back exactly.
//!
//! The other traces real programs, the same scenarios on every kernel, each checked exactly at
//! the receiver (names, values, counts, parent links) and in spanprobe's log (every span
//! exported; how it attached):
//!
//! - `calls.c`'s outer(x) -> middle -> inner(x + 1): arguments, return values, where DWARF
//!   places each function, and the attach mode the kernel allows (uprobe_multi links from
//!   Linux 6.6; before, perf-event uprobes, with the warning saying why);
//! - a `str` argument (the sleepable entry program);
//! - calls on three threads, each a tree of its own on its own thread;
//! - `run -- sh -c 'calls ...; calls fork'`: the shell's children and a fork without exec
//!   (the fork-following tracepoint program);
//! - USDT start/until pairs: `usdt.c`'s, guarded by semaphores, which only uprobe_multi links
//!   set, so traced from 6.6 and refused with the reason before loading anything on 6.1 (and
//!   with `--attach perf-event` everywhere); a pair without semaphore, traced everywhere;
//! - a Go program: arguments under the register ABI, spans closed at `RET`s, goroutines;
//! - `stack: true`: the frames of the callers, named and placed;
//! - a W3C traceparent argument, and binary ids, joining the caller's trace;
//! - members read along DWARF paths (`->user->name`), and their faults;
//! - a sidecar: `run` without a command, attached to a process already running, ended by
//!   SIGINT;
//! - the chain again with `--attach perf-event`.
//!
//! # Adding a scenario
//!
//! A scenario is a [`Case`]: a script made for the receiver started for it on each machine,
//! and checks on what the script printed and the receiver got. The script must work under
//! dash (host) and busybox's ash (guests); it finds spanprobe in `$SPANPROBE`, and the
//! receiver through [`vm::grpc_endpoint`] (`http://$OTLP_HOST:PORT`, `$OTLP_HOST` being
//! 127.0.0.1 on the host and 10.0.2.2 in a guest). Its config names no endpoint: spanprobe
//! takes `OTEL_EXPORTER_OTLP_ENDPOINT`, over gRPC unless `OTEL_EXPORTER_OTLP_PROTOCOL` says
//! `http/protobuf` (then with [`vm::http_endpoint`]). Everything it runs is built on the host
//! and named with [`Script::file`], which places it in the guest at the same path, with the
//! shared libraries ldd lists for it. By the time `spanprobe run -- COMMAND` exits, every span
//! is at the receiver. [`traced`] writes such a script:
//!
//! ```ignore
//! let dir = Workdir::new();
//! let calls = dir.calls("calls", &[]);
//! let config = config_file(&dir, "nesting", &functions_config(&calls, chain_functions()));
//! let nesting = Case::new(
//!     move |receiver| {
//!         // OTEL_EXPORTER_OTLP_ENDPOINT=http://$OTLP_HOST:PORT "$SPANPROBE" run \
//!         //     --config CONFIG -- CALLS chain-wait
//!         let command = format!("{} chain-wait", calls.display());
//!         traced("nesting", receiver, &config, &[], &command, &[&calls])
//!     },
//!     |_machine, output, receiver| {
//!         output.assert_success();
//!         assert_eq!(named(&receiver.spans(), "middle").len(), 1);
//!     },
//! );
//! vm::run_matrix(&[nesting /* , the other cases */]).await;
//! ```
//!
//! Put the cases of a test in one `run_matrix` call (one boot per kernel: a boot costs
//! seconds), give a slow case a longer [`Script::time_limit`] (the verifier runs about 6 times
//! slower under TCG), and narrow the matrix while iterating with `SPANPROBE_KERNELS=6.1.0`.
//! A failing check does not stop the others: `run_matrix` reports every case on every machine
//! that failed. What a kernel cannot do, spanprobe must refuse up front with the reason: the
//! case checks the refusal there (see [`has_uprobe_multi`]).

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prost::Message as _;
use serde_json::{Value, json};
use support::{
    receiver::{Protocol, ReceivedSpan, Receiver},
    scenario::{Workdir, by_id, named, probe},
    vm::{self, Case, Machine, Script, ScriptOutput},
};

/// A well-formed OTLP request with one span called `name`, as a file to post.
fn request_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![9; 8],
                    name: name.to_owned(),
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let path = dir.join("request.pb");
    std::fs::write(&path, request.encode_to_vec()).expect("request written");
    path
}

/// The line of `spanprobe check`'s report that places `function`, up to its file offset:
/// what resolving the symbol found, the same on every kernel (what the report says after it,
/// about the first instruction and what a trap costs, is the kernel's).
fn placement<'a>(report: &'a str, function: &str) -> Option<&'a str> {
    let line = report
        .lines()
        .find(|line| line.starts_with(&format!("  {function}: ")))?;
    let start = line.find("file offset 0x")? + "file offset 0x".len();
    let digits = line[start..]
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(line.len() - start);
    Some(&line[..start + digits])
}

#[tokio::test(flavor = "multi_thread")]
async fn every_machine_runs_host_programs_and_spanprobe_and_reaches_a_receiver() {
    let dir = Workdir::new();
    let (library, program) = dir.greet();
    let request = request_file(dir.path(), "posted-by-the-script");
    let config = dir.write_yaml(&format!(
        "probes:\n  - binary: {}\n    functions:\n      - symbol: greet_len\n",
        library.display()
    ));
    // What resolving greet_len gives on the host, to be found the same in every guest.
    let host_check =
        support::spanprobe_with(&["check", "--config", config.to_str().expect("a UTF-8 path")])
            .await;
    let host_report = support::stdout(&host_check);
    let expected_placement = placement(&host_report, "greet_len")
        .unwrap_or_else(|| panic!("no placement of greet_len in {host_report}"))
        .to_owned();

    let cases = [
        Case::new(
            |_| Script::new("release", "uname -r"),
            |machine, output, _| {
                output.assert_success();
                assert_eq!(output.stdout, format!("{}\n", machine.release()));
            },
        ),
        Case::new(
            |_| {
                Script::new(
                    "btf and uprobes",
                    "[ -s /sys/kernel/btf/vmlinux ] && echo btf\n\
                     [ -e /sys/bus/event_source/devices/uprobe/type ] && echo uprobes\n\
                     true",
                )
            },
            |_, output, _| {
                output.assert_success();
                assert_eq!(output.stdout, "btf\nuprobes\n");
            },
        ),
        Case::new(
            move |receiver| {
                Script::new(
                    "otlp round trip",
                    format!(
                        "busybox wget -q -O /dev/null --header 'Content-Type: application/x-protobuf' \
                         --post-file {} {}/v1/traces && echo posted",
                        request.display(),
                        vm::http_endpoint(receiver)
                    ),
                )
                .file(&request)
            },
            |_, output, receiver| {
                output.assert_success();
                assert_eq!(output.stdout, "posted\n");
                let spans = receiver.spans();
                assert_eq!(spans.len(), 1, "{spans:?}");
                assert_eq!(spans[0].name(), "posted-by-the-script");
                assert_eq!(spans[0].protocol, Protocol::Http);
                let headers = receiver.request_headers();
                assert_eq!(headers.len(), 1);
                assert_eq!(
                    headers[0].1.get("user-agent").map(|v| v.as_bytes()),
                    Some(&b"Wget"[..])
                );
            },
        ),
        Case::new(
            move |_| Script::new("host program", program.display().to_string()).file(&program),
            |_, output, _| {
                output.assert_success();
                assert_eq!(output.stdout, "use_greet 14\n");
            },
        ),
        Case::new(
            |_| Script::new("spanprobe version", "\"$SPANPROBE\" --version"),
            |_, output, _| {
                output.assert_success();
                assert_eq!(
                    output.stdout,
                    format!("spanprobe {}\n", env!("CARGO_PKG_VERSION"))
                );
            },
        ),
        {
            let first_line = format!("{}: ok, 1 function to probe", config.display());
            Case::new(
                move |_| {
                    Script::new(
                        "spanprobe check",
                        format!("\"$SPANPROBE\" check --config {}", config.display()),
                    )
                    .file(&config)
                    .file(&library)
                },
                move |_, output, _| {
                    output.assert_success();
                    assert_eq!(output.stdout.lines().next(), Some(first_line.as_str()));
                    assert_eq!(
                        placement(&output.stdout, "greet_len"),
                        Some(expected_placement.as_str()),
                        "{}",
                        output.stdout
                    );
                },
            )
        },
        Case::new(
            |_| {
                Script::new(
                    "exit status and streams",
                    "printf 'no newline'; printf 'to stderr\\n' >&2; exit 3",
                )
            },
            |_, output, _| {
                assert_eq!((output.status, output.timed_out), (3, false), "{output}");
                assert_eq!(output.stdout, "no newline");
                assert_eq!(output.stderr, "to stderr\n");
            },
        ),
        Case::new(
            // The background sleep outlives the script unless its whole group is killed.
            |_| {
                Script::new("time limit", "sleep 300 & echo started; sleep 300")
                    .time_limit(Duration::from_secs(2))
            },
            |_, output, _| {
                assert!(output.timed_out, "{output}");
                assert_eq!(output.status, 128 + libc::SIGKILL, "{output}");
                assert_eq!(output.stdout, "started\n");
                assert!(
                    output.elapsed >= Duration::from_secs(2)
                        && output.elapsed < Duration::from_secs(10),
                    "{output}"
                );
            },
        ),
    ];
    vm::run_matrix(&cases).await;
}

/// A tracing scenario's time limit: under TCG the slowest (Go) takes about 5 s, loading the
/// programs most of it.
const SCENARIO_LIMIT: Duration = Duration::from_secs(30);

/// The W3C trace context the trace-context scenario passes: the caller's trace and span.
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

/// OTLP `SpanFlags`: the parent's remoteness is known (bit 8), and it is remote (bit 9).
const PARENT_IS_REMOTE: u32 = 0x300;

/// What spanprobe logs when the kernel has no uprobe_multi links and it falls back by itself.
const FALLBACK_WARNING: &str = "WARN attaching perf-event uprobes instead of uprobe_multi links: \
     the kernel has no uprobe_multi links (Linux 6.6+); each is detached alone (~0.1 s per \
     function and program), and attaching needs CAP_SYS_ADMIN\n";

/// Whether `machine`'s kernel has uprobe_multi links (Linux 6.6+), which spanprobe attaches
/// through when it can; before, it falls back to perf-event uprobes, and refuses what only
/// those links can do.
fn has_uprobe_multi(machine: &Machine) -> bool {
    let release = machine.release();
    let mut numbers = release.split(['.', '-', '+']).map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (6, 6),
        _ => panic!("no version in the release {release:?}"),
    }
}

/// Writes `config` as `dir/NAME.yaml` (as JSON, which YAML reads): one file per case.
fn config_file(dir: &Workdir, name: &str, config: &Value) -> PathBuf {
    let path = dir.path().join(format!("{name}.yaml"));
    let text = serde_json::to_string_pretty(config).expect("a config is JSON");
    std::fs::write(&path, text).expect("config written");
    path
}

/// A config probing `functions` of `binary`, exporting where `OTEL_EXPORTER_OTLP_ENDPOINT` says.
fn functions_config(binary: &Path, functions: Value) -> Value {
    json!({ "probes": [probe(binary, functions)] })
}

/// The script `name`: `spanprobe run --config CONFIG OPTIONS... -- COMMAND` exporting to
/// `receiver`, with the config and `files` (what the command runs) placed in a guest.
fn traced(
    name: &str,
    receiver: &Receiver,
    config: &Path,
    options: &[&str],
    command: &str,
    files: &[&Path],
) -> Script {
    let options: String = options.iter().map(|option| format!(" {option}")).collect();
    let text = format!(
        "OTEL_EXPORTER_OTLP_ENDPOINT={} \"$SPANPROBE\" run --config {}{options} -- {command}",
        vm::grpc_endpoint(receiver),
        config.display()
    );
    files
        .iter()
        .fold(Script::new(name, text).file(config), |script, file| {
            script.file(file)
        })
        .time_limit(SCENARIO_LIMIT)
}

/// The pids that `program` printed as `PROGRAM[PID] ...` lines (calls.c does), in order.
fn printed_pids(stdout: &str, program: &str) -> Vec<i64> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(program)?.strip_prefix('[')?;
            rest.split_once(']')?.0.parse().ok()
        })
        .collect()
}

/// The 1-based number of the first line of `file` containing `text`, after the first line
/// containing `after`.
fn line_of(file: &Path, after: &str, text: &str) -> i64 {
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts that `output`'s stderr has spanprobe's line saying it exported every one of
/// `spans` spans, and lost none.
fn assert_all_exported(output: &ScriptOutput, spans: usize) {
    let done = format!("INFO done events={spans} exported={spans} dropped=0 ");
    assert!(output.stderr.contains(&done), "no {done:?} in\n{output}");
}

/// Asserts what spanprobe's log says of attaching `probes` uprobes for `functions` functions:
/// through uprobe_multi links (`multi_links` of them) where the kernel has them and
/// `--attach perf-event` was not given; otherwise as perf-event uprobes, one link each, and
/// when the kernel made it fall back, with the warning saying why.
fn assert_attached(
    machine: &Machine,
    output: &ScriptOutput,
    forced_perf_event: bool,
    (probes, functions, multi_links): (usize, usize, usize),
) {
    let multi = has_uprobe_multi(machine) && !forced_perf_event;
    let attached = if multi {
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
    let fell_back = !has_uprobe_multi(machine) && !forced_perf_event;
    assert_eq!(
        output.stderr.contains(FALLBACK_WARNING),
        fell_back,
        "the fallback warning {}expected:\n{output}",
        if fell_back { "" } else { "not " }
    );
}

/// calls.c's chain outer(x) -> middle -> inner(x + 1), with every argument and return value.
fn chain_functions() -> Value {
    let x = json!([{ "index": 0, "name": "x", "type": "i64" }]);
    let ret = json!({ "type": "i64" });
    json!([
        { "symbol": "outer", "args": x, "return": ret },
        { "symbol": "middle", "return": ret },
        { "symbol": "inner", "args": x, "return": ret },
    ])
}

/// One outer -> middle -> inner tree of calls.c's: the process and thread it ran on, and its
/// numbers: outer's x and return value, middle's return value, inner's x and return value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Chain {
    pid: i64,
    tid: i64,
    numbers: [i64; 5],
}

impl Chain {
    /// outer(x)'s tree as calls.c computes it (inner doubles, middle and outer add 1), on
    /// process `pid`'s thread `tid`.
    fn of(pid: i64, tid: i64, x: i64) -> Chain {
        Chain {
            pid,
            tid,
            numbers: [x, 2 * x + 4, 2 * x + 3, x + 1, 2 * x + 2],
        }
    }
}

/// The chains that `spans` make, sorted, asserting that they are all of `spans` and that each
/// is whole and linked exactly: outer a root, with one child, middle, with one child, inner,
/// which has none; one trace, one thread of one process; children within their parents; every
/// call returned.
fn chains(spans: &[ReceivedSpan]) -> Vec<Chain> {
    let names: Vec<&str> = spans.iter().map(ReceivedSpan::name).collect();
    let outers = named(spans, "outer");
    assert_eq!(spans.len(), 3 * outers.len(), "{names:?}");
    let only_child = |parent: &ReceivedSpan, name: &str| -> &ReceivedSpan {
        let children: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.span.parent_span_id == parent.span.span_id)
            .collect();
        match children[..] {
            [child] if child.name() == name => child,
            _ => panic!(
                "{} should have one child, {name}: {children:#?}",
                parent.name()
            ),
        }
    };
    let mut found = Vec::new();
    for outer in outers {
        assert!(
            outer.span.parent_span_id.is_empty(),
            "not a root: {outer:#?}"
        );
        let middle = only_child(outer, "middle");
        let inner = only_child(middle, "inner");
        assert!(
            spans
                .iter()
                .all(|s| s.span.parent_span_id != inner.span.span_id),
            "inner has children: {names:?}"
        );
        let pid = outer.resource_int("process.pid").expect("process.pid");
        let tid = outer.int_attr("thread.id").expect("thread.id");
        for span in [outer, middle, inner] {
            assert_eq!(span.span.trace_id, outer.span.trace_id);
            assert_eq!(span.resource_int("process.pid"), Some(pid));
            assert_eq!(span.int_attr("thread.id"), Some(tid));
            assert_eq!(span.str_attr("code.function.name"), Some(span.name()));
            assert_eq!(span.attr("spanprobe.incomplete"), None, "{span:#?}");
            assert!(span.span.start_time_unix_nano <= span.span.end_time_unix_nano);
        }
        let (o, m, i) = (&outer.span, &middle.span, &inner.span);
        assert!(
            o.start_time_unix_nano <= m.start_time_unix_nano
                && m.start_time_unix_nano <= i.start_time_unix_nano
                && i.end_time_unix_nano <= m.end_time_unix_nano
                && m.end_time_unix_nano <= o.end_time_unix_nano,
            "children outside their parents: {o:?} {m:?} {i:?}"
        );
        let number = |span: &ReceivedSpan, key: &str| {
            span.int_attr(key)
                .unwrap_or_else(|| panic!("no integer {key}: {span:#?}"))
        };
        found.push(Chain {
            pid,
            tid,
            numbers: [
                number(outer, "x"),
                number(outer, "return_value"),
                number(middle, "return_value"),
                number(inner, "x"),
                number(inner, "return_value"),
            ],
        });
    }
    found.sort();
    found
}

/// Issue #29's scenarios, each checked exactly on every machine, in one boot per kernel.
#[tokio::test(flavor = "multi_thread")]
async fn real_scenarios_trace_the_same_on_every_kernel() {
    let dir = Workdir::new();
    let calls = dir.calls("calls", &[]);
    let mut cases = vec![
        nesting(&dir, &calls, false),
        str_argument(&dir),
        threads(&dir, &calls),
        forked_children(&dir, &calls),
    ];
    cases.extend(usdt_with_semaphores(&dir));
    cases.extend([
        usdt_without_semaphores(&dir),
        goroutines(&dir),
        stack(&dir, &calls),
        trace_context(&dir),
        member_path(&dir),
        sidecar(&dir),
        nesting(&dir, &calls, true),
    ]);
    vm::run_matrix(&cases).await;
}

/// outer(1) -> middle -> inner(2), with their arguments and return values and where DWARF
/// places them, attached as the kernel allows or, with `perf_event`, with
/// `--attach perf-event`.
fn nesting(dir: &Workdir, calls: &Path, perf_event: bool) -> Case {
    let (name, file, options): (&str, &str, &[&str]) = if perf_event {
        (
            "nesting, --attach perf-event",
            "nesting-perf-event",
            &["--attach", "perf-event"],
        )
    } else {
        ("nesting and return values", "nesting", &[])
    };
    let config = config_file(dir, file, &functions_config(calls, chain_functions()));
    let source = support::programs().join("calls.c");
    let lines: BTreeMap<&str, i64> = ["outer", "middle", "inner"]
        .into_iter()
        .map(|f| (f, line_of(&source, "", &format!("PROBED long {f}("))))
        .collect();
    let calls = calls.to_owned();
    Case::new(
        move |receiver| {
            let command = format!("{} chain-wait", calls.display());
            traced(name, receiver, &config, options, &command, &[&calls])
        },
        move |machine, output, receiver| {
            output.assert_success();
            let [pid] = printed_pids(&output.stdout, "calls")[..] else {
                panic!("no pid printed: {output}")
            };
            let spans = receiver.spans();
            assert_eq!(chains(&spans), [Chain::of(pid, pid, 1)]);
            for span in &spans {
                assert_eq!(span.str_attr("thread.name"), Some("calls"));
                assert_eq!(
                    span.str_attr("code.file.path"),
                    source.to_str(),
                    "{span:#?}"
                );
                assert_eq!(
                    span.int_attr("code.line.number"),
                    Some(lines[span.name()]),
                    "{span:#?}"
                );
            }
            assert_attached(machine, output, perf_event, (6, 3, 2));
            assert_all_exported(output, 3);
        },
    )
}

/// A `str` argument (read by the sleepable entry program): libgreet's greet_len(name), called
/// by use_greet with "world" and "spanprobe".
fn str_argument(dir: &Workdir) -> Case {
    let (library, program) = dir.greet();
    let functions = json!([{
        "symbol": "greet_len",
        "args": [{ "index": 0, "name": "name", "type": "str" }],
        "return": { "type": "i32" },
    }]);
    let config = config_file(dir, "str", &functions_config(&library, functions));
    Case::new(
        move |receiver| {
            let command = program.display().to_string();
            traced(
                "a str argument",
                receiver,
                &config,
                &[],
                &command,
                &[&program, &library],
            )
        },
        |_, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "use_greet 14\n");
            let spans = receiver.spans();
            let mut greeted: Vec<_> = spans
                .iter()
                .map(|s| {
                    assert!(s.span.parent_span_id.is_empty(), "{s:#?}");
                    (
                        s.name(),
                        s.str_attr("name"),
                        s.bool_attr("name.truncated"),
                        s.int_attr("return_value"),
                    )
                })
                .collect();
            greeted.sort();
            assert_eq!(
                greeted,
                [
                    ("greet_len", Some("spanprobe"), None, Some(9)),
                    ("greet_len", Some("world"), None, Some(5)),
                ]
            );
            assert_all_exported(output, 2);
        },
    )
}

/// `calls threads 3`: thread i calls outer(i * 1000 + j) for j below 20; each thread's calls
/// are trees of their own, on that thread, one trace each.
fn threads(dir: &Workdir, calls: &Path) -> Case {
    let config = config_file(dir, "threads", &functions_config(calls, chain_functions()));
    let calls = calls.to_owned();
    Case::new(
        move |receiver| {
            let command = format!("{} threads 3", calls.display());
            traced("threads", receiver, &config, &[], &command, &[&calls])
        },
        |_, output, receiver| {
            output.assert_success();
            let [pid] = printed_pids(&output.stdout, "calls")[..] else {
                panic!("no pid printed: {output}")
            };
            let spans = receiver.spans();
            let found = chains(&spans);
            let mut by_thread: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for chain in &found {
                assert_eq!(chain, &Chain::of(pid, chain.tid, chain.numbers[0]));
                by_thread
                    .entry(chain.tid)
                    .or_default()
                    .push(chain.numbers[0]);
            }
            assert!(!by_thread.contains_key(&pid), "the main thread calls none");
            let mut per_thread: Vec<Vec<i64>> = by_thread.into_values().collect();
            per_thread.iter_mut().for_each(|xs| xs.sort());
            per_thread.sort();
            let expected: Vec<Vec<i64>> = (1..=3)
                .map(|i| (0..20).map(|j| i * 1000 + j).collect())
                .collect();
            assert_eq!(per_thread, expected);
            let traces: BTreeSet<&[u8]> = spans.iter().map(|s| &s.span.trace_id[..]).collect();
            assert_eq!(traces.len(), 60);
            assert_all_exported(output, 180);
        },
    )
}

/// `run -- sh -c 'calls chain-wait; calls fork'`: the shell's two children (fork and exec),
/// and the child that `calls fork` forks without exec, each traced from its first call.
fn forked_children(dir: &Workdir, calls: &Path) -> Case {
    let config = config_file(dir, "fork", &functions_config(calls, chain_functions()));
    let calls = calls.to_owned();
    Case::new(
        move |receiver| {
            let c = calls.display();
            let command = format!("sh -c '{c} chain-wait; {c} fork'");
            traced(
                "forked children",
                receiver,
                &config,
                &[],
                &command,
                &[&calls],
            )
        },
        |_, output, receiver| {
            output.assert_success();
            let [first, second] = printed_pids(&output.stdout, "calls")[..] else {
                panic!("two pids printed: {output}")
            };
            assert_ne!(first, second);
            let found = chains(&receiver.spans());
            // The child that `calls fork` forked: a third process, which calls outer(2).
            let forked = found
                .iter()
                .map(|chain| chain.pid)
                .find(|pid| ![first, second].contains(pid))
                .unwrap_or_else(|| panic!("no span of the forked child: {found:#?}"));
            let mut expected = vec![
                Chain::of(first, first, 1),
                Chain::of(second, second, 1),
                Chain::of(forked, forked, 2),
            ];
            expected.sort();
            assert_eq!(found, expected);
            assert_all_exported(output, 9);
        },
    )
}

/// `tests/programs/usdt.c`'s probes, all guarded by semaphores (which only uprobe_multi links
/// set): its request and step pairs, `mark`, and `guarded`, which fires only while its
/// semaphore is set. Two cases: attached as the kernel allows (traced from Linux 6.6, refused
/// before), and with `--attach perf-event` (refused everywhere).
fn usdt_with_semaphores(dir: &Workdir) -> [Case; 2] {
    let binary = support::compile_c(&support::programs().join("usdt.c"), dir.path(), "usdt", &[]);
    let usdt = json!([
        { "probe": "app:request__start", "until": "app:request__done", "span_name": "request",
          "args": [
              { "index": 0, "name": "id" },
              { "index": 1, "name": "name", "type": "str" },
              { "index": 2, "name": "slot" },
          ],
          "until_args": [{ "index": 0, "name": "done_id" }] },
        { "probe": "app:step__start", "until": "app:step__done", "span_name": "step",
          "args": [{ "index": 0, "name": "i" }],
          "until_args": [{ "index": 0, "name": "result" }] },
        { "probe": "app:mark", "args": [{ "index": 0, "name": "seven" }] },
        { "probe": "app:guarded", "args": [{ "index": 0, "name": "id" }] },
    ]);
    let config = config_file(
        dir,
        "usdt",
        &json!({ "probes": [{ "binary": binary, "usdt": usdt }] }),
    );
    let traced_case = {
        let (binary, config) = (binary.clone(), config.clone());
        Case::new(
            move |receiver| {
                let command = binary.display().to_string();
                traced(
                    "usdt pairs with semaphores",
                    receiver,
                    &config,
                    &[],
                    &command,
                    &[&binary],
                )
            },
            |machine, output, receiver| {
                if has_uprobe_multi(machine) {
                    output.assert_success();
                    check_usdt_spans(output, &receiver.spans());
                } else {
                    assert_semaphores_refused(
                        output,
                        "the kernel has no uprobe_multi links (Linux 6.6+)",
                    );
                    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
                }
            },
        )
    };
    let refused_case = Case::new(
        move |receiver| {
            let command = binary.display().to_string();
            traced(
                "usdt semaphores, --attach perf-event",
                receiver,
                &config,
                &["--attach", "perf-event"],
                &command,
                &[&binary],
            )
        },
        |_, output, receiver| {
            assert_semaphores_refused(output, "`--attach perf-event` attaches perf events");
            assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
        },
    );
    [traced_case, refused_case]
}

/// usdt.c's spans, as tests/usdt.rs checks them: the requests with their arguments (a
/// register, a string behind one, an int in memory; at the end, a register or a constant),
/// the steps inside them, the marks (one outside any request) and `guarded`, which fired.
fn check_usdt_spans(output: &ScriptOutput, spans: &[ReceivedSpan]) {
    assert_eq!(output.stdout, "usdt 99 guarded 1\n");
    let ids = by_id(spans);
    let parent_id = |span: &ReceivedSpan| {
        ids.get(&span.span.parent_span_id)
            .map(|parent| (parent.name().to_owned(), parent.int_attr("id")))
    };
    let mut requests: Vec<_> = named(spans, "request")
        .iter()
        .map(|r| {
            assert!(r.span.parent_span_id.is_empty(), "{r:#?}");
            assert!(r.span.end_time_unix_nano > r.span.start_time_unix_nano);
            (
                r.int_attr("id"),
                r.str_attr("name"),
                r.int_attr("slot"),
                r.int_attr("done_id"),
            )
        })
        .collect();
    requests.sort();
    assert_eq!(
        requests,
        [
            (Some(1), Some("alpha"), Some(101), Some(1)),
            (Some(2), Some("beta"), Some(102), Some(2)),
            (Some(3), Some("gamma"), Some(103), Some(3)),
        ]
    );
    let request = |id: i64| Some(("request".to_owned(), Some(id)));
    let mut steps: Vec<_> = named(spans, "step")
        .iter()
        .map(|s| (s.int_attr("i"), parent_id(s), s.int_attr("result")))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            (Some(1), request(1), Some(10)),
            (Some(2), request(1), Some(20)),
            (Some(3), request(3), Some(30)),
            (Some(4), request(3), Some(40)),
        ]
    );
    let mut points: Vec<_> = spans
        .iter()
        .filter(|s| s.name().starts_with("app:"))
        .map(|p| {
            assert_eq!(p.bool_attr("spanprobe.entry_only"), Some(true));
            assert_eq!(p.span.start_time_unix_nano, p.span.end_time_unix_nano);
            let value = p.int_attr(if p.name() == "app:mark" {
                "seven"
            } else {
                "id"
            });
            (p.name(), value, parent_id(p))
        })
        .collect();
    points.sort();
    assert_eq!(
        points,
        [
            ("app:guarded", Some(1), request(1)),
            ("app:guarded", Some(2), request(2)),
            ("app:guarded", Some(3), request(3)),
            ("app:mark", Some(7), None),
            ("app:mark", Some(7), request(1)),
            ("app:mark", Some(7), request(2)),
            ("app:mark", Some(7), request(3)),
        ]
    );
    assert_eq!(spans.len(), 3 + 4 + 7);
    assert_all_exported(output, 14);
}

/// Asserts that spanprobe refused usdt.c's probes, which have semaphores, as perf-event
/// uprobes, before loading anything or starting the command: exit status 1, and its whole
/// stderr the refusal with `reason` (no warning that it would fall back to perf-event
/// uprobes first), naming the first 3 of the 8 sites guarded by a semaphore.
fn assert_semaphores_refused(output: &ScriptOutput, reason: &str) {
    assert_eq!(
        (output.status, output.timed_out, output.stdout.as_str()),
        (1, false, ""),
        "{output}"
    );
    let lines: Vec<&str> = output.stderr.lines().collect();
    let [refusal] = lines[..] else {
        panic!("not the refusal alone:\n{output}");
    };
    let sites = refusal
        .strip_prefix("spanprobe: USDT probes guarded by a semaphore (")
        .and_then(|rest| {
            rest.strip_suffix(&format!(
                " and 5 more) need uprobe_multi links, which increment it: {reason}"
            ))
        })
        .unwrap_or_else(|| panic!("not the refusal: {refusal:?}\n{output}"));
    // "`app:NAME` at file offset 0x...", three distinct sites of the config's probes.
    let sites: BTreeSet<(&str, u64)> = sites
        .split(", ")
        .map(|site| {
            let (probe, offset) = site
                .strip_prefix("`app:")
                .and_then(|site| site.split_once("` at file offset 0x"))
                .unwrap_or_else(|| panic!("not a site: {site:?} in {refusal}"));
            let probes = [
                "request__start",
                "request__done",
                "step__start",
                "step__done",
                "mark",
                "guarded",
            ];
            assert!(probes.contains(&probe), "{site:?} in {refusal}");
            let offset = u64::from_str_radix(offset, 16)
                .unwrap_or_else(|_| panic!("not a file offset: {site:?} in {refusal}"));
            (probe, offset)
        })
        .collect();
    assert_eq!(sites.len(), 3, "{refusal}");
}

/// A request start/done pair without a semaphore: it needs no uprobe_multi link, so it is
/// traced on every kernel (as perf-event uprobes before Linux 6.6).
const PLAIN_USDT: &str = r#"
#include <stdio.h>
#include <sys/sdt.h>

__attribute__((noinline)) static long handle(long id) {
    DTRACE_PROBE1(plain, request__start, id);
    long result = id * 10;
    DTRACE_PROBE1(plain, request__done, result);
    return result;
}

int main(void) {
    long total = 0;
    for (long i = 1; i <= 3; i++) total += handle(i);
    printf("plain %ld\n", total);
    return 0;
}
"#;

fn usdt_without_semaphores(dir: &Workdir) -> Case {
    let source = dir.path().join("plain_usdt.c");
    std::fs::write(&source, PLAIN_USDT).expect("source written");
    let binary = support::compile_c(&source, dir.path(), "plain_usdt", &[]);
    let usdt = json!([{
        "probe": "plain:request__start", "until": "plain:request__done", "span_name": "request",
        "args": [{ "index": 0, "name": "id" }],
        "until_args": [{ "index": 0, "name": "result" }],
    }]);
    let config = config_file(
        dir,
        "plain-usdt",
        &json!({ "probes": [{ "binary": binary, "usdt": usdt }] }),
    );
    Case::new(
        move |receiver| {
            let command = binary.display().to_string();
            traced(
                "a usdt pair without semaphore",
                receiver,
                &config,
                &[],
                &command,
                &[&binary],
            )
        },
        |machine, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "plain 60\n");
            let spans = receiver.spans();
            let mut requests: Vec<_> = spans
                .iter()
                .map(|r| {
                    assert!(r.span.parent_span_id.is_empty(), "{r:#?}");
                    assert!(r.span.end_time_unix_nano > r.span.start_time_unix_nano);
                    assert_eq!(r.attr("spanprobe.entry_only"), None);
                    (r.name(), r.int_attr("id"), r.int_attr("result"))
                })
                .collect();
            requests.sort();
            assert_eq!(
                requests,
                [
                    ("request", Some(1), Some(10)),
                    ("request", Some(2), Some(20)),
                    ("request", Some(3), Some(30)),
                ]
            );
            // Two sites, one uprobe each, through one program: one uprobe_multi link.
            assert_attached(machine, output, false, (2, 2, 1));
            assert_all_exported(output, 3);
        },
    )
}

/// `tests/programs/go`, built with Debian's Go: main.handle's arguments under the register
/// ABI, and main.worker on three goroutines of its own, each span closed at the function's
/// `RET`.
fn goroutines(dir: &Workdir) -> Case {
    let binary = support::go_build(dir.path(), "go", "goapp");
    let functions = json!([
        { "symbol": "main.handle", "args": [
            { "index": 0, "name": "name", "type": "str" },
            { "index": 1, "name": "n", "type": "i64" },
            { "index": 2, "name": "flag", "type": "bool" },
        ] },
        { "symbol": "main.worker", "args": [{ "index": 0, "name": "n", "type": "i64" }] },
    ]);
    let config = config_file(dir, "go", &functions_config(&binary, functions));
    Case::new(
        move |receiver| {
            let command = binary.display().to_string();
            traced("goroutines", receiver, &config, &[], &command, &[&binary])
        },
        |_, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "16 1 <nil> not found 12\n");
            let spans = receiver.spans();
            for span in &spans {
                assert!(span.span.parent_span_id.is_empty(), "{span:#?}");
                assert_eq!(span.attr("spanprobe.entry_only"), None, "{span:#?}");
                assert_eq!(span.attr("spanprobe.incomplete"), None, "{span:#?}");
                assert!(span.span.end_time_unix_nano > span.span.start_time_unix_nano);
            }
            let [handle] = named(&spans, "main.handle")[..] else {
                panic!("one main.handle: {spans:#?}")
            };
            assert_eq!(
                (
                    handle.str_attr("name"),
                    handle.int_attr("n"),
                    handle.bool_attr("flag"),
                    handle.int_attr("goroutine.id"),
                ),
                (Some("alpha"), Some(2), Some(true), Some(1)),
                "main's goroutine is the first"
            );
            let mut workers: Vec<_> = named(&spans, "main.worker")
                .iter()
                .map(|w| (w.int_attr("n"), w.int_attr("goroutine.id")))
                .collect();
            workers.sort();
            assert_eq!(
                workers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
                [Some(1), Some(2), Some(3)]
            );
            let goroutines: BTreeSet<_> = workers.iter().map(|(_, id)| *id).collect();
            assert_eq!(goroutines.len(), 3, "one goroutine each: {workers:?}");
            assert!(
                goroutines.iter().all(|id| id.is_some_and(|id| id > 1)),
                "{workers:?}"
            );
            assert_eq!(spans.len(), 4);
            assert_all_exported(output, 4);
        },
    )
}

/// Where libc6-dbg put the detached debug info of the shared library `library` (by its build
/// id, under /usr/lib/debug/.build-id): what names libc's own frames, on the host and, placed
/// there too, in a guest.
fn detached_debug_info(library: &Path) -> PathBuf {
    let notes = std::process::Command::new("readelf")
        .arg("-n")
        .arg(library)
        .output()
        .expect("readelf runs");
    let notes = String::from_utf8_lossy(&notes.stdout);
    let id = notes
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{} has no build id:\n{notes}", library.display()));
    let path = PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &id[..2],
        &id[2..]
    ));
    assert!(
        path.is_file(),
        "{} missing: scripts/setup.sh installs libc6-dbg",
        path.display()
    );
    path
}

/// `stack: true` on inner: its stack, symbolized, names inner, its callers middle and outer,
/// then main, each at its line of calls.c, then libc's start (named from libc6-dbg's file).
fn stack(dir: &Workdir, calls: &Path) -> Case {
    let libc_debug_info = detached_debug_info(Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
    let mut functions = chain_functions();
    functions[2]["stack"] = json!(true);
    let config = config_file(dir, "stack", &functions_config(calls, functions));
    let source = support::programs().join("calls.c");
    let frames: Vec<(&str, i64)> = [
        ("inner", "", "PROBED long inner"),
        ("middle", "", "PROBED long middle"),
        ("outer", "", "PROBED long outer"),
        ("main", "\"chain-wait\"", "outer(1);"),
    ]
    .into_iter()
    .map(|(function, after, text)| (function, line_of(&source, after, text)))
    .collect();
    let calls = calls.to_owned();
    Case::new(
        move |receiver| {
            let command = format!("{} chain-wait", calls.display());
            let files = [calls.as_path(), libc_debug_info.as_path()];
            traced("stack: true", receiver, &config, &[], &command, &files)
        },
        move |_, output, receiver| {
            output.assert_success();
            let [pid] = printed_pids(&output.stdout, "calls")[..] else {
                panic!("no pid printed: {output}")
            };
            let spans = receiver.spans();
            assert_eq!(chains(&spans), [Chain::of(pid, pid, 1)]);
            let [inner] = named(&spans, "inner")[..] else {
                unreachable!("chains() found one")
            };
            let stack: Vec<&str> = inner
                .str_attr("code.stacktrace")
                .unwrap_or_else(|| panic!("no code.stacktrace: {inner:#?}"))
                .lines()
                .collect();
            assert!(stack.len() > frames.len(), "{stack:#?}");
            for (frame, (function, line)) in stack.iter().zip(&frames) {
                assert!(
                    frame.starts_with(&format!("{function} ("))
                        && frame.ends_with(&format!("/calls.c:{line})")),
                    "{frame:?} is not {function} at calls.c:{line}: {stack:#?}"
                );
            }
            assert!(
                stack[frames.len()].starts_with("__libc_start_call_main ("),
                "{stack:#?}"
            );
            assert_eq!(inner.attr("spanprobe.stack.truncated"), None);
            for span in named(&spans, "outer")
                .into_iter()
                .chain(named(&spans, "middle"))
            {
                assert_eq!(span.attr("code.stacktrace"), None, "{span:#?}");
            }
        },
    )
}

/// context.c's handle(traceparent, n) with a sampled W3C traceparent (its span joins that
/// trace as the child of the caller's span) and with an empty one (a new trace), then
/// handle_ids(trace id, span id, 100) with binary ids; lookup, which each calls, is their
/// child.
fn trace_context(dir: &Workdir) -> Case {
    let program = support::compile_c(
        &support::programs().join("context.c"),
        dir.path(),
        "context",
        &[],
    );
    let functions = json!([
        {
            "symbol": "handle",
            "trace_context": { "arg": 0, "format": "traceparent" },
            "args": [{ "index": 1, "name": "n", "type": "i32" }],
        },
        {
            "symbol": "handle_ids",
            "trace_context": { "format": "ids", "trace_id_arg": 0, "span_id_arg": 1 },
            "args": [{ "index": 2, "name": "n", "type": "i32" }],
        },
        { "symbol": "lookup", "args": [{ "index": 0, "name": "n", "type": "i32" }] },
    ]);
    let config = config_file(dir, "context", &functions_config(&program, functions));
    Case::new(
        move |receiver| {
            let command = format!("{} 00-{TRACE}-{PARENT}-01 ''", program.display());
            traced(
                "trace context",
                receiver,
                &config,
                &[],
                &command,
                &[&program],
            )
        },
        |_, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "context 383\n");
            let spans = receiver.spans();
            let mut calls: Vec<_> = spans.iter().map(|s| (s.name(), s.int_attr("n"))).collect();
            calls.sort();
            assert_eq!(
                calls,
                [
                    ("handle", Some(1)),
                    ("handle", Some(2)),
                    ("handle_ids", Some(100)),
                    ("lookup", Some(1)),
                    ("lookup", Some(2)),
                    ("lookup", Some(100)),
                ]
            );
            let find = |name: &str, n: i64| {
                spans
                    .iter()
                    .find(|s| s.name() == name && s.int_attr("n") == Some(n))
                    .expect("listed above")
            };
            // Joined: the caller's trace, as the child of the caller's span, marked remote.
            let joined = find("handle", 1);
            assert_eq!(hex(&joined.span.trace_id), TRACE);
            assert_eq!(hex(&joined.span.parent_span_id), PARENT);
            assert_eq!(joined.span.flags & PARENT_IS_REMOTE, PARENT_IS_REMOTE);
            let by_ids = find("handle_ids", 100);
            assert_eq!(
                hex(&by_ids.span.trace_id),
                "101112131415161718191a1b1c1d1e1f"
            );
            assert_eq!(hex(&by_ids.span.parent_span_id), "a0a1a2a3a4a5a6a7");
            assert_eq!(by_ids.span.flags & PARENT_IS_REMOTE, PARENT_IS_REMOTE);
            // Empty: a new root, in a trace of its own.
            let fresh = find("handle", 2);
            assert!(fresh.span.parent_span_id.is_empty(), "{fresh:#?}");
            assert_ne!(fresh.span.trace_id, joined.span.trace_id);
            assert_ne!(fresh.span.trace_id, by_ids.span.trace_id);
            for (handler, n) in [(joined, 1), (fresh, 2), (by_ids, 100)] {
                let lookup = find("lookup", n);
                assert_eq!(lookup.span.parent_span_id, handler.span.span_id);
                assert_eq!(lookup.span.trace_id, handler.span.trace_id);
                assert_eq!(
                    lookup.span.flags & PARENT_IS_REMOTE,
                    0x100,
                    "a local parent"
                );
            }
            assert!(
                output.stderr.contains(" invalid_trace_context=1\n"),
                "{output}"
            );
            assert_all_exported(output, 6);
        },
    )
}

/// fields.c's handle(struct request *r), with members read along DWARF paths: a full request,
/// one whose pointers are NULL (what is behind them faults), and NULL itself.
fn member_path(dir: &Workdir) -> Case {
    let program = support::compile_c(
        &support::programs().join("fields.c"),
        dir.path(),
        "fields",
        &[],
    );
    let member = |name: &str, ty: &str, path: &str| json!({ "index": 0, "name": name, "type": ty, "path": path });
    let functions = json!([{
        "symbol": "handle",
        "args": [
            member("rid", "i32", "->rid"),
            member("user_id", "i64", "->user->id"),
            member("user_name", "str", "->user->name"),
            member("path", "str", "->path"),
            member("tag2", "i32", "->tags[2]"),
            member("kind", "i32", "->k"),
        ],
        "return": { "type": "i32" },
    }]);
    let config = config_file(dir, "fields", &functions_config(&program, functions));
    Case::new(
        move |receiver| {
            let command = program.display().to_string();
            traced(
                "dwarf member paths",
                receiver,
                &config,
                &[],
                &command,
                &[&program],
            )
        },
        |_, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "fields 2018 8 16 24 40 8\n");
            let mut calls = receiver.spans();
            calls.sort_by_key(|span| span.span.start_time_unix_nano);
            let names = ["rid", "user_id", "user_name", "path", "tag2", "kind"];
            // Each member: its value, an integer or a string, or "fault".
            let values: Vec<Vec<String>> = calls
                .iter()
                .map(|call| {
                    assert_eq!(call.name(), "handle");
                    let mut values: Vec<String> = names
                        .iter()
                        .map(|name| {
                            let fault = call.bool_attr(&format!("{name}.fault"));
                            match (call.int_attr(name), call.str_attr(name), fault) {
                                (Some(n), None, None) => n.to_string(),
                                (None, Some(s), None) => format!("{s:?}"),
                                (None, None, Some(true)) => "fault".to_owned(),
                                _ => panic!("{name}: {call:#?}"),
                            }
                        })
                        .collect();
                    values.push(format!("returned {:?}", call.int_attr("return_value")));
                    values
                })
                .collect();
            let expected = [
                r#"7 42 "alice" "/index.html" 30 2 returned Some(7)"#,
                "8 fault fault fault 0 1 returned Some(8)",
                "fault fault fault fault fault fault returned Some(-1)",
            ];
            assert_eq!(
                values.iter().map(|v| v.join(" ")).collect::<Vec<_>>(),
                expected
            );
            assert_all_exported(output, 3);
        },
    )
}

/// A program that waits, already running, for SIGUSR1, then calls outer(3) and outer(4) (the
/// same chain as calls.c's); it calls outer(1) before it says it is ready.
const WAITER: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#define PROBED __attribute__((noinline, noipa))
PROBED long inner(long x) { return x * 2; }
PROBED long middle(long x) { return inner(x + 1) + 1; }
PROBED long outer(long x) { return middle(x) + 1; }

int main(void) {
    sigset_t usr1;
    int signal;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    long before = outer(1);
    printf("waiter[%d] ready %ld\n", (int)getpid(), before);
    fflush(stdout);
    sigwait(&usr1, &signal);
    printf("waiter done %ld\n", outer(3) + outer(4));
    return 0;
}
"#;

/// A sidecar: the waiter starts first; `spanprobe run` without a command (every process) in
/// the background; once its log says it attached, the waiter is woken to make its calls,
/// then spanprobe gets SIGINT and exits 0 with every span exported.
fn sidecar(dir: &Workdir) -> Case {
    let source = dir.path().join("waiter.c");
    std::fs::write(&source, WAITER).expect("source written");
    let waiter = support::compile_c(&source, dir.path(), "waiter", &[]);
    let config = config_file(
        dir,
        "sidecar",
        &functions_config(&waiter, chain_functions()),
    );
    Case::new(
        move |receiver| {
            let text = format!(
                r#"out=$(mktemp -d)
# wait_for FILE TEXT PID: until FILE has TEXT, while PID runs, for 30 s at least.
wait_for() {{
  tries=0
  until grep -qs "$2" "$1"; do
    if ! kill -0 "$3" 2>/dev/null || [ $tries -ge 300 ]; then
      echo "no '$2' in $1"; cat "$1" >&2; return 1
    fi
    tries=$((tries + 1)); sleep 0.1
  done
}}
{waiter} >$out/waiter &
waiter=$!
wait_for $out/waiter ready $waiter || exit 1
OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} "$SPANPROBE" run --config {config} 2>$out/spanprobe &
tracer=$!
wait_for $out/spanprobe 'attached with' $tracer || exit 1
kill -USR1 $waiter
wait $waiter
echo "waiter exited $?"
kill -INT $tracer
wait $tracer
echo "spanprobe exited $?"
cat $out/waiter
cat $out/spanprobe >&2
"#,
                waiter = waiter.display(),
                endpoint = vm::grpc_endpoint(receiver),
                config = config.display(),
            );
            Script::new("sidecar", text)
                .file(&config)
                .file(&waiter)
                .time_limit(SCENARIO_LIMIT + Duration::from_secs(30))
        },
        |_, output, receiver| {
            output.assert_success();
            let [pid] = printed_pids(&output.stdout, "waiter")[..] else {
                panic!("no pid printed: {output}")
            };
            assert_eq!(
                output.stdout,
                format!(
                    "waiter exited 0\nspanprobe exited 0\nwaiter[{pid}] ready 6\nwaiter done 22\n"
                )
            );
            // Only the calls made after spanprobe attached, in the process it found running.
            assert_eq!(
                chains(&receiver.spans()),
                [Chain::of(pid, pid, 3), Chain::of(pid, pid, 4)]
            );
            assert_all_exported(output, 6);
        },
    )
}
