//! End to end, with real eBPF and a real OTLP receiver: the bundled demo traced under
//! `spanprobe run -- demo N`, and the errors a user gets for bad input.

mod support;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::{Value, json};
use support::{
    receiver::{Protocol, ReceivedSpan},
    scenario::{Scenario, Workdir, assert_exit, named, probe, symbols},
};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, BufReader, Lines},
    process::Child,
};

const LOOPS: i64 = 5;
const WAIT: Duration = Duration::from_secs(20);

/// Every function of the demo, exported over `protocol` as the service `demo-e2e`.
fn demo_config(s: &Scenario, demo: &Path, protocol: &str) -> Value {
    let functions = json!([
        add(),
        {
            "symbol": "two_chars_and_return",
            "args": [
                { "index": 0, "name": "a", "type": "char" },
                { "index": 1, "name": "b", "type": "char" },
            ],
            "return": { "name": "c", "type": "char" },
        },
        { "symbol": "do_nothing_and_return", "return": { "type": "i32" } },
        {
            "symbol": "outer",
            "args": [{ "index": 0, "name": "x", "type": "i64" }],
            "return": { "type": "i64" },
        },
        { "symbol": "middle" },
        {
            "symbol": "inner",
            "args": [{ "index": 0, "type": "u64" }],
            "return": { "name": "doubled", "type": "i64" },
        },
    ]);
    let mut config = s.config_over(demo, functions, protocol);
    config["service_name"] = json!("demo-e2e");
    config
}

/// The demo's `two_ints_and_return` as `add`, with its arguments `a`, `b` and return `sum`.
fn add() -> Value {
    json!({
        "symbol": "two_ints_and_return",
        "span_name": "add",
        "args": [
            { "index": 0, "name": "a", "type": "i32" },
            { "index": 1, "name": "b", "type": "i32" },
        ],
        "return": { "name": "sum", "type": "i32" },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_spans_arrive_over_otlp_grpc() {
    support::needs_root!();
    let s = Scenario::start().await;
    let demo = s.demo();
    let config = demo_config(&s, &demo, "grpc");
    let command = [demo.to_str().unwrap(), &LOOPS.to_string()];
    // spanprobe exported everything before it exited: it is all here, and nothing more comes.
    let (output, spans) = s.trace(&config, &command).exits(0).await;
    let pid = support::demo_pid(&output);

    let expected = 6 * LOOPS as usize;
    assert_eq!(
        spans.len(),
        expected,
        "spans: {:?}",
        spans.iter().map(|s| s.name()).collect::<Vec<_>>()
    );
    assert!(spans.iter().all(|s| s.protocol == Protocol::Grpc));

    // Exactly one span per call of each function.
    for name in [
        "add",
        "two_chars_and_return",
        "do_nothing_and_return",
        "outer",
        "middle",
        "inner",
    ] {
        assert_eq!(named(&spans, name).len(), LOOPS as usize, "{name}");
    }

    // Arguments and return values, typed.
    let mut adds: Vec<_> = named(&spans, "add")
        .iter()
        .map(|s| {
            (
                s.int_attr("a").unwrap(),
                s.int_attr("b").unwrap(),
                s.int_attr("sum").unwrap(),
            )
        })
        .collect();
    adds.sort();
    let want: Vec<_> = (0..LOOPS).map(|i| (i, 10 * i, 11 * i)).collect();
    assert_eq!(adds, want);
    let mut chars: Vec<_> = named(&spans, "two_chars_and_return")
        .iter()
        .map(|s| {
            (
                s.str_attr("a").unwrap().to_owned(),
                s.str_attr("b").unwrap().to_owned(),
                s.str_attr("c").unwrap().to_owned(),
            )
        })
        .collect();
    chars.sort();
    let want: Vec<_> = (0..LOOPS as u8)
        .map(|i| {
            (
                "a".to_owned(),
                char::from(b'a' + i).to_string(),
                char::from(b'a' + i).to_string(),
            )
        })
        .collect();
    assert_eq!(chars, want);
    for span in named(&spans, "do_nothing_and_return") {
        assert_eq!(span.int_attr("return_value"), Some(0));
        assert_eq!(
            span.str_attr("code.function.name"),
            Some("do_nothing_and_return")
        );
    }
    let mut inners: Vec<_> = named(&spans, "inner")
        .iter()
        .map(|s| (s.int_attr("arg0").unwrap(), s.int_attr("doubled").unwrap()))
        .collect();
    inners.sort();
    assert_eq!(
        inners,
        (0..LOOPS).map(|i| (i + 1, 2 * (i + 1))).collect::<Vec<_>>()
    );

    // The nested chain: outer -> middle -> inner, one trace per outer call.
    let by_id: HashMap<&[u8], &ReceivedSpan> = spans
        .iter()
        .map(|s| (s.span.span_id.as_slice(), s))
        .collect();
    let parent_of = |s: &ReceivedSpan| by_id.get(s.span.parent_span_id.as_slice()).copied();
    for inner in named(&spans, "inner") {
        let middle = parent_of(inner).expect("inner has a parent");
        assert_eq!(middle.name(), "middle");
        let outer = parent_of(middle).expect("middle has a parent");
        assert_eq!(outer.name(), "outer");
        assert!(outer.span.parent_span_id.is_empty(), "outer is a root");
        assert_eq!(inner.span.trace_id, outer.span.trace_id);
        assert_eq!(middle.span.trace_id, outer.span.trace_id);
        assert_eq!(
            outer.int_attr("x").unwrap() + 1,
            inner.int_attr("arg0").unwrap()
        );
        // Children lie within their parents.
        assert!(outer.span.start_time_unix_nano <= middle.span.start_time_unix_nano);
        assert!(middle.span.start_time_unix_nano <= inner.span.start_time_unix_nano);
        assert!(inner.span.end_time_unix_nano <= middle.span.end_time_unix_nano);
        assert!(middle.span.end_time_unix_nano <= outer.span.end_time_unix_nano);
    }
    let mut traces: Vec<_> = spans.iter().map(|s| s.span.trace_id.clone()).collect();
    traces.sort();
    traces.dedup();
    // Four root calls per loop, each its own trace.
    assert_eq!(traces.len(), 4 * LOOPS as usize);

    // Common attributes, kind, timestamps and the resource.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for span in &spans {
        assert_eq!(span.span.kind, 1, "SPAN_KIND_INTERNAL");
        assert_eq!(span.int_attr("thread.id"), Some(pid));
        assert!(span.str_attr("code.function.name").is_some());
        // The demo is built with -g: DWARF says where each function is.
        assert!(
            span.str_attr("code.file.path")
                .is_some_and(|f| f.ends_with("examples/demo/demo.c"))
        );
        assert!(span.int_attr("code.line.number").is_some_and(|l| l > 0));
        assert!(span.span.start_time_unix_nano <= span.span.end_time_unix_nano);
        assert!(
            now - span.span.start_time_unix_nano < 60_000_000_000,
            "wall-clock start"
        );
        assert_eq!(span.resource_str("service.name"), Some("demo-e2e"));
        assert_eq!(span.resource_int("process.pid"), Some(pid));
        assert_eq!(
            span.resource_str("process.executable.path"),
            Some(demo.to_str().unwrap())
        );
        assert!(
            span.resource_str("host.name")
                .is_some_and(|h| !h.is_empty())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_spans_arrive_over_otlp_http() {
    support::needs_root!();
    let s = Scenario::start().await;
    let demo = s.demo();
    let config = demo_config(&s, &demo, "http/protobuf");
    let output = s.run(&config, &[demo.to_str().unwrap(), "3"]).await;
    assert_exit(&output, 0);
    let spans = s.receiver.wait_for_spans(18, WAIT).await;
    assert_eq!(spans.len(), 18);
    assert!(spans.iter().all(|s| s.protocol == Protocol::Http));
    let mut sums: Vec<_> = named(&spans, "add")
        .iter()
        .map(|s| s.int_attr("sum").unwrap())
        .collect();
    sums.sort();
    assert_eq!(sums, vec![0, 11, 22]);
}

/// The stdout exporter writes one line per span to standard error, never into the traced
/// command's output; `file:` or `-o FILE` send the lines to a file instead.
#[tokio::test(flavor = "multi_thread")]
async fn stdout_exporter_prints_one_line_per_span_apart_from_the_command_s_output() {
    support::needs_root!();
    let dir = Workdir::new();
    let demo = dir.demo();
    let mut config = json!({ "probes": [probe(&demo, json!([add()]))] });
    let output = dir.run(&config, &[demo.to_str().unwrap(), "4"]).await;
    assert_exit(&output, 0);
    let out = support::stdout(&output);
    assert!(
        out.lines().all(|l| l.starts_with("demo[")),
        "only the demo's own output: {out}"
    );
    let err = support::stderr(&output);
    let lines: Vec<_> = err.lines().filter(|l| l.contains(" add ")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    // The summary at exit, one row per span name: calls, exported, p50, p99.
    let row: Vec<_> = err
        .lines()
        .find(|l| l.starts_with("add "))
        .expect("summary row")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["add", "4", "4"], "{err}");
    assert!(row[3].ends_with('s') && row[4].ends_with('s'), "{err}");
    // No service_name: the OpenTelemetry default names the executable.
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" unknown_service:demo add ")),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.contains("parent=- a=3 b=30 sum=33 ")
            && l.contains(" code.function.name=\"two_ints_and_return\" ")),
        "{err}"
    );

    // `file:` relative to the config; `-o` relative to where spanprobe runs, and it wins.
    config["exporter"] = json!({ "stdout": { "file": "spans.txt" } });
    let config = dir.write(&config);
    let cli_file = dir.path().join("cli.txt");
    for (args, file) in [
        (vec![], dir.path().join("spans.txt")),
        (vec!["-o", cli_file.to_str().unwrap()], cli_file.clone()),
    ] {
        let mut cmd = tokio::process::Command::new(support::spanprobe());
        cmd.arg("run").arg("--config").arg(&config).args(&args);
        let output = cmd.arg("--").arg(&demo).arg("2").output().await.unwrap();
        assert_exit(&output, 0);
        let spans = std::fs::read_to_string(&file).unwrap();
        assert_eq!(spans.lines().count(), 2, "{file:?}: {spans}");
        assert!(!support::stderr(&output).contains("parent=-"));
    }
}

/// A config, written in `dir`, probing `inner` of the demo built there, to stdout.
fn inner_of_demo(dir: &Workdir) -> PathBuf {
    dir.write(&json!({ "probes": [probe(dir.demo(), symbols(&["inner"]))] }))
}

#[tokio::test(flavor = "multi_thread")]
async fn exits_with_the_commands_status() {
    support::needs_root!();
    let dir = Workdir::new();
    let config = inner_of_demo(&dir);
    let output = support::run(&config, &["sh", "-c", "exit 7"]).await;
    assert_exit(&output, 7);
    let output = support::run(&config, &["sh", "-c", "kill -TERM $$"]).await;
    assert_eq!(output.status.code(), Some(128 + 15));
}

/// Which of spanprobe's outputs a test reads.
enum Stream {
    Stdout,
    Stderr,
}

/// spanprobe started with `args`, and the lines of the output `read`; the other is discarded.
fn spawn_reading(
    args: &[&str],
    read: Stream,
) -> (Child, Lines<BufReader<Box<dyn AsyncRead + Unpin + Send>>>) {
    let (stdout, stderr) = match read {
        Stream::Stdout => (Stdio::piped(), Stdio::null()),
        Stream::Stderr => (Stdio::null(), Stdio::piped()),
    };
    let mut child = tokio::process::Command::new(support::spanprobe())
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stream: Box<dyn AsyncRead + Unpin + Send> = match read {
        Stream::Stdout => Box::new(child.stdout.take().unwrap()),
        Stream::Stderr => Box::new(child.stderr.take().unwrap()),
    };
    (child, BufReader::new(stream).lines())
}

/// Sends SIGINT to `child`, as `kill -INT` would (not a terminal).
fn interrupt(child: &Child) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
}

/// A SIGINT sent to spanprobe (kill, not a terminal) is passed on to the command, once: the
/// command counts the SIGINTs it gets and exits with that count after the first.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_sent_to_spanprobe_reaches_the_command_once() {
    support::needs_root!();
    let dir = Workdir::new();
    let config = inner_of_demo(&dir);
    let script = "n=0; trap 'n=$((n+1))' INT; echo ready; \
                  while [ $n -eq 0 ]; do sleep 0.05; done; sleep 0.5; exit $((40+n))";
    let config = config.to_str().unwrap();
    let (mut child, mut lines) = spawn_reading(
        &["run", "--config", config, "--", "sh", "-c", script],
        Stream::Stdout,
    );
    let ready = tokio::time::timeout(WAIT, lines.next_line()).await;
    assert_eq!(ready.unwrap().unwrap().as_deref(), Some("ready"));
    interrupt(&child);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(41),
        "the command got exactly one SIGINT"
    );
}

/// A SIGINT that comes while the programs are still being loaded and attached ends the run
/// cleanly once they are, with the summary: it does not kill spanprobe halfway.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_during_start_up_ends_the_run_cleanly() {
    support::needs_root!();
    let dir = Workdir::new();
    let config = inner_of_demo(&dir);
    let config = config.to_str().unwrap();
    let (mut child, mut lines) = spawn_reading(
        &["--log-level", "debug", "run", "--config", config],
        Stream::Stderr,
    );
    let mut seen = String::new();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|| panic!("spanprobe ended before loading: {seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("loading and attaching") {
            break;
        }
    }
    interrupt(&child);
    let rest = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    let seen = rest.await.unwrap();
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(seen.contains("attached") && seen.contains("done"), "{seen}");
}

/// Runs the demo, built into `dir`, under the bad `config` (which need not exist): spanprobe
/// exits with `code` and the demo never runs. Returns spanprobe's stderr.
async fn run_bad(dir: &Workdir, config: &Path, code: i32) -> String {
    let demo = dir.demo();
    let output = support::run(config, &[demo.to_str().unwrap(), "1"]).await;
    assert_exit(&output, code);
    let out = support::stdout(&output);
    // The command never ran.
    assert!(!out.contains("demo["), "{out}");
    support::stderr(&output)
}

/// [`run_bad`] under the config text `yaml`, which these tests are about (positions): (the
/// directory of the config and the demo, the config, stderr).
async fn run_bad_yaml(yaml: &str, code: i32) -> (Workdir, PathBuf, String) {
    let dir = Workdir::new();
    let config = dir.write_yaml(yaml);
    let err = run_bad(&dir, &config, code).await;
    (dir, config, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_config_file() {
    let dir = Workdir::new();
    let missing = dir.path().join("nope.yaml");
    let err = run_bad(&dir, &missing, 2).await;
    assert_eq!(
        err.trim(),
        format!(
            "spanprobe: {}: cannot read config: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_yaml_names_file_line_and_column() {
    let yaml = "probes:\n  - binary: demo\n    functions: [\n";
    let (_, config, err) = run_bad_yaml(yaml, 2).await;
    let prefix = format!(
        "spanprobe: {}:3:16: probes[0].functions: unclosed bracket '['",
        config.display()
    );
    assert!(err.starts_with(&prefix), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_errors_name_the_field() {
    let yaml = "probes:\n  - binary: demo\n    functions:\n      - symbol: inner\n        args: [{ index: 0, type: i33 }]\n";
    let (_, config, err) = run_bad_yaml(yaml, 2).await;
    assert!(
        err.starts_with(&format!("spanprobe: {}:5:", config.display()))
            && err.contains(
                "probes[0].functions[0].args[0].type: unknown type `i33` (did you mean `i32`?)"
            ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_binary_is_named() {
    let yaml = "probes:\n  - binary: ./not-built\n    functions: [{ symbol: inner }]\n  - binary: libnot-a-library.so.1\n    functions: [{ symbol: f }]\n";
    let (dir, config, err) = run_bad_yaml(yaml, 2).await;
    assert_eq!(
        err.trim(),
        format!(
            "spanprobe: {config}:2:13: probes[0].binary: {}: no such file\n\
             {config}:4:13: probes[1].binary: `libnot-a-library.so.1` is not a file next to the \
             config, a program in PATH ({path}), nor a library the dynamic loader knows \
             (searched LD_LIBRARY_PATH, the ld.so cache and the default directories)",
            dir.path().join("./not-built").display(),
            config = config.display(),
            path = std::env::var("PATH").unwrap(),
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_symbols_are_all_named_with_suggestions() {
    let yaml = "probes:\n  - binary: demo\n    functions:\n      - symbol: inner\n      - symbol: two_ints_and_retrun\n      - symbol: no_such_function_here\n";
    let (dir, config, err) = run_bad_yaml(yaml, 2).await;
    let demo = dir.path().join("demo");
    let lines: Vec<_> = err.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    let (config, demo) = (config.display(), demo.display());
    let expected = [
        format!(
            "spanprobe: {config}:5:17: probes[0].functions[1].symbol: {demo}: no function `two_ints_and_retrun` (closest: `two_ints_and_return`"
        ),
        format!(
            "{config}:6:17: probes[0].functions[2].symbol: {demo}: no function `no_such_function_here`"
        ),
    ];
    for (line, prefix) in lines.iter().zip(&expected) {
        assert!(line.starts_with(prefix.as_str()), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pid_filter_and_a_command_exclude_each_other() {
    let dir = Workdir::new();
    let mut probe = probe("demo", symbols(&["inner"]));
    probe["pid"] = json!(1);
    let config = dir.write(&json!({ "probes": [probe] }));
    let err = run_bad(&dir, &config, 1).await;
    assert_eq!(
        err.trim(),
        format!(
            "spanprobe: {}: probes[0].pid: cannot be used with a command: with a command only \
             the command's process is traced",
            config.display()
        )
    );
}
