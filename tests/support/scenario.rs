//! What a test sets up before it traces: a scratch directory with the programs built into it, a
//! receiver, and a config made from data (`serde_json::json!`) rather than indented YAML text,
//! so that each test says only what is its own. YAML is a superset of JSON: the config is
//! written as JSON.

use std::{
    collections::HashMap,
    ops::Deref,
    path::{Path, PathBuf},
    process::Output,
};

use serde_json::{Value, json};

use super::{
    Sidecar,
    receiver::{ReceivedSpan, Receiver, ServerIdentity},
};

/// A scratch directory: programs are built into it and configs written there. It is removed
/// when dropped, so a test keeps it while its files are in use.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    /// A fresh, empty directory.
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// Where the directory is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `tests/programs/calls.c`, built as `name` with extra compiler flags.
    pub fn calls(&self, name: &str, flags: &[&str]) -> PathBuf {
        let mut all = vec!["-pthread"];
        all.extend_from_slice(flags);
        super::compile_c(&super::programs().join("calls.c"), self.path(), name, &all)
    }

    /// The C program `tests/programs/NAME.c`, built as `name` with the default flags.
    pub fn c_program(&self, name: &str) -> PathBuf {
        let source = super::programs().join(format!("{name}.c"));
        super::compile_c(&source, self.path(), name, &[])
    }

    /// The bundled demo.
    pub fn demo(&self) -> PathBuf {
        super::build_demo(self.path())
    }

    /// `libgreet.so` and `use_greet`, which calls it: (library, program).
    pub fn greet(&self) -> (PathBuf, PathBuf) {
        super::build_greet(self.path())
    }

    /// `tests/programs/shapes.cpp`, the C++ program.
    pub fn shapes(&self) -> PathBuf {
        super::compile_cpp(&super::programs().join("shapes.cpp"), self.path(), "shapes")
    }

    /// `tests/programs/rusty.rs`, optimized, with frame pointers and, if `debug_info`, DWARF.
    pub fn rusty(&self, debug_info: bool) -> PathBuf {
        let binary = self.path().join("rusty");
        let mut rustc = std::process::Command::new("rustc");
        rustc
            .args(["-O", "-C", "force-frame-pointers=yes", "-o"])
            .arg(&binary);
        if debug_info {
            rustc.arg("-g");
        }
        let status = rustc
            .arg(super::programs().join("rusty.rs"))
            .status()
            .expect("rustc runs");
        assert!(status.success(), "rustc failed on rusty.rs");
        binary
    }

    /// A C program standing in for a Go binary; see [`super::build_fake_go`].
    pub fn fake_go(&self) -> PathBuf {
        super::build_fake_go(self.path())
    }

    /// Writes `yaml` as this directory's `spanprobe.yaml`, as it is: for the tests about the
    /// text itself (positions in messages, malformed YAML, `init`'s and the bundled configs).
    pub fn write_yaml(&self, yaml: &str) -> PathBuf {
        super::write_config(self.path(), yaml)
    }

    /// Writes `config` as this directory's `spanprobe.yaml`.
    pub fn write(&self, config: &Value) -> PathBuf {
        self.write_named("spanprobe", config)
    }

    /// Writes `config` as this directory's `NAME.yaml`: a file each, for the configs of a
    /// test that runs several at once.
    pub fn write_named(&self, name: &str, config: &Value) -> PathBuf {
        let path = self.path().join(format!("{name}.yaml"));
        let text = serde_json::to_string_pretty(config).expect("a config is JSON");
        std::fs::write(&path, text).expect("config written");
        path
    }

    /// Writes `config` and runs `spanprobe check` on it, asserting it exits with `code`: its
    /// report (stdout) when it is 0, its errors (stderr) otherwise.
    pub async fn check(&self, config: &Value, code: i32) -> String {
        let path = self.write(config);
        let output = super::spanprobe_with(&["check", "-c", path.to_str().unwrap()]).await;
        assert_exit(&output, code);
        if code == 0 {
            super::stdout(&output)
        } else {
            super::stderr(&output)
        }
    }

    /// Runs `spanprobe run` under `config` with `command` to completion.
    pub async fn run(&self, config: &Value, command: &[&str]) -> Output {
        super::run(&self.write(config), command).await
    }
}

impl Default for Workdir {
    fn default() -> Workdir {
        Workdir::new()
    }
}

/// A [`Workdir`] and the receiver its configs export to.
pub struct Scenario {
    /// Replaced by a test that wants a fresh one, or taken to stop it.
    pub receiver: Receiver,
    workdir: Workdir,
}

impl Deref for Scenario {
    type Target = Workdir;

    fn deref(&self) -> &Workdir {
        &self.workdir
    }
}

impl Scenario {
    /// A fresh directory and receiver.
    pub async fn start() -> Scenario {
        Scenario::with(Receiver::start().await)
    }

    /// A fresh directory and a receiver behind TLS with `identity`.
    pub async fn start_tls(identity: &ServerIdentity) -> Scenario {
        Scenario::with(Receiver::start_tls(identity).await)
    }

    /// A fresh directory and receiver, with `calls.c` built as `name` with extra `flags`.
    pub async fn with_calls(name: &str, flags: &[&str]) -> (Scenario, PathBuf) {
        let scenario = Scenario::start().await;
        let calls = scenario.calls(name, flags);
        (scenario, calls)
    }

    fn with(receiver: Receiver) -> Scenario {
        Scenario {
            receiver,
            workdir: Workdir::new(),
        }
    }

    /// A config probing `functions` of `binary`, exporting to the receiver over gRPC.
    pub fn config(&self, binary: impl AsRef<Path>, functions: Value) -> Value {
        json!({
            "exporter": { "otlp": { "endpoint": self.receiver.grpc_endpoint() } },
            "probes": [probe(binary, functions)],
        })
    }

    /// [`Scenario::config`] over `protocol` (`grpc` or `http/protobuf`).
    pub fn config_over(&self, binary: impl AsRef<Path>, functions: Value, protocol: &str) -> Value {
        let endpoint = match protocol {
            "grpc" => self.receiver.grpc_endpoint(),
            _ => self.receiver.http_endpoint(),
        };
        let mut config = self.config(binary, functions);
        config["exporter"]["otlp"] = json!({ "endpoint": endpoint, "protocol": protocol });
        config
    }

    /// `spanprobe run -- command` under `config`, to run with [`Trace::exits`], which states
    /// the exit status expected.
    pub fn trace<'a>(&'a self, config: &Value, command: &'a [&'a str]) -> Trace<'a> {
        Trace::new(self, self.write(config), command)
    }

    /// [`Scenario::trace`] with a config written as YAML (`init`'s, say), exporting to the
    /// receiver.
    pub fn trace_yaml<'a>(&'a self, yaml: &str, command: &'a [&'a str]) -> Trace<'a> {
        let endpoint = self.receiver.grpc_endpoint();
        let yaml = format!("{yaml}\nexporter: {{ otlp: {{ endpoint: '{endpoint}' }} }}\n");
        Trace::new(self, self.write_yaml(&yaml), command)
    }

    /// A sidecar (`spanprobe run` without a command) under `config`, once attached.
    pub async fn sidecar(&self, config: &Value) -> Sidecar {
        Sidecar::start(&self.write(config), &[]).await
    }
}

/// A `spanprobe run -- COMMAND` to make, with its config written: it runs when told the exit
/// status to expect, which every test thus states (0 when the command succeeds, as spanprobe
/// exits with the command's status, or spanprobe's own 2 for a config it refuses).
#[must_use = "a trace runs only when told its exit status: `.exits(code).await`"]
pub struct Trace<'a> {
    scenario: &'a Scenario,
    config: PathBuf,
    command: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
}

impl<'a> Trace<'a> {
    fn new(scenario: &'a Scenario, config: PathBuf, command: &'a [&'a str]) -> Trace<'a> {
        Trace {
            scenario,
            config,
            command,
            env: &[],
        }
    }

    /// With environment variables `env` set for spanprobe (and so for the command).
    pub fn env(self, env: &'a [(&'a str, &'a str)]) -> Trace<'a> {
        Trace { env, ..self }
    }

    /// Runs it to completion, asserting that spanprobe exited with `code`; returns its output
    /// and every span, all exported by the time spanprobe exits.
    pub async fn exits(self, code: i32) -> (Output, Vec<ReceivedSpan>) {
        let output = super::run_env(&self.config, self.command, self.env).await;
        assert_exit(&output, code);
        (output, self.scenario.receiver.spans())
    }
}

/// One `probes:` entry: `functions` of `binary`.
pub fn probe(binary: impl AsRef<Path>, functions: Value) -> Value {
    json!({ "binary": binary.as_ref(), "functions": functions })
}

/// Functions by name (or glob), with nothing captured.
pub fn symbols(names: &[&str]) -> Value {
    names.iter().map(|name| json!({ "symbol": name })).collect()
}

/// `calls.c`'s chain outer(x) -> middle -> inner(x + 1), with `before` probed first.
pub fn chain(before: &[Value]) -> Value {
    let mut functions = before.to_vec();
    functions.extend([
        json!({ "symbol": "outer", "args": [{ "index": 0, "name": "x", "type": "i64" }] }),
        json!({ "symbol": "middle" }),
        json!({ "symbol": "inner", "args": [{ "index": 0, "name": "x", "type": "i64" }] }),
    ]);
    Value::Array(functions)
}

/// `symbol` with its argument `x` and its return value, both i64.
pub fn x_and_return(symbol: &str) -> Value {
    json!({
        "symbol": symbol,
        "args": [{ "index": 0, "name": "x", "type": "i64" }],
        "return": { "type": "i64" },
    })
}

/// Runs `calls ARGS...` (`calls.c`) with `functions` probed, to its exit with status 0; returns
/// spanprobe's output and every span.
pub async fn trace_calls(functions: Value, args: &[&str]) -> (Output, Vec<ReceivedSpan>) {
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let mut command = vec![calls.to_str().unwrap()];
    command.extend(args);
    s.trace(&s.config(&calls, functions), &command)
        .exits(0)
        .await
}

/// Runs `calls bench n` under spanprobe with `config`, which must succeed; returns spanprobe's
/// stderr and the spans received.
pub async fn bench_calls(
    s: &Scenario,
    config: &Value,
    calls: &Path,
    n: &str,
) -> (String, Vec<ReceivedSpan>) {
    let (output, spans) = s
        .trace(config, &[calls.to_str().unwrap(), "bench", n])
        .exits(0)
        .await;
    (super::stderr(&output), spans)
}

/// Asserts that `output`'s process exited with `code`, showing its stderr if not.
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        super::stderr(output)
    );
}

/// Asserts that `text` contains each of `expected`, showing the text for the first that is
/// missing.
pub fn assert_has_all(text: &str, expected: &[&str]) {
    for expected in expected {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
}

/// Asserts that `output`'s stderr (spanprobe's log and summary) contains `text`.
pub fn assert_stderr_has(output: &Output, text: &str) {
    let stderr = super::stderr(output);
    assert!(stderr.contains(text), "no {text:?} in {stderr}");
}

/// The spans called `name`.
pub fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name() == name).collect()
}

/// Why `span`'s call did not return (`spanprobe.incomplete`), if it did not.
pub fn incomplete(span: &ReceivedSpan) -> Option<&str> {
    span.str_attr("spanprobe.incomplete")
}

/// Whether every one of `spans` is of a call that returned.
pub fn all_returned<'a>(spans: impl IntoIterator<Item = &'a ReceivedSpan>) -> bool {
    spans.into_iter().all(|s| incomplete(s).is_none())
}

/// The spans by their span id, for following parents.
pub fn by_id(spans: &[ReceivedSpan]) -> HashMap<Vec<u8>, &ReceivedSpan> {
    spans.iter().map(|s| (s.span.span_id.clone(), s)).collect()
}
