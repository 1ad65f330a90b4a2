//! Every eBPF program spanprobe has, in both attach modes, accepted by the verifier of every
//! kernel of the matrix (`spanprobe check --load`, which loads what a config needs and attaches
//! nothing), and what a kernel cannot do refused before anything is loaded, with the reason.
//!
//! The programs' code paths depend on what a config captures (settings fixed at load), so the
//! config here needs every kind of program with every setting on: plain captures and member
//! paths, memory (a trace context) and stacks, Go calls with and without memory, their `RET`
//! sites, and the pid filter and fork program that `run` with a command loads.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{
    scenario::{Workdir, probe},
    vm::{self, Case, Machine, Script, ScriptOutput},
};

/// The programs of each attach mode in the order `check --load` loads them: the tracepoint
/// programs, then the uprobe programs (returns, Go `RET`s, entries plain and sleepable, Go
/// entries plain and sleepable).
const MULTI: [&str; 8] = [
    "spanprobe_thread_exit",
    "spanprobe_fork",
    "spanprobe_return",
    "spanprobe_go",
    "spanprobe_entry",
    "spanprobe_entry_sleepable",
    "spanprobe_go_entry",
    "spanprobe_go_entry_sleepable",
];
const PERF_EVENT: [&str; 8] = [
    "spanprobe_thread_exit",
    "spanprobe_fork",
    "spanprobe_return_perf",
    "spanprobe_go_perf",
    "spanprobe_entry_perf",
    "spanprobe_entry_sleepable_perf",
    "spanprobe_go_entry_perf",
    "spanprobe_go_entry_sleepable_perf",
];

/// A config whose functions need every program: `calls.c`'s chain with a member path and
/// stacks (walked, and copied for userspace to unwind), `context.c`'s traceparent (memory), and the Go program's calls, one with a string.
fn every_program(dir: &Workdir) -> (PathBuf, Vec<PathBuf>) {
    let calls = dir.calls("calls", &[]);
    let context = dir.c_program("context");
    let go = support::go_build(dir.path(), "go", "app");
    let config = dir.write(&json!({
        "probes": [
            probe(&calls, json!([
                { "symbol": "outer", "args": [{ "index": 0, "name": "x", "type": "i64" }] },
                { "symbol": "inner", "stack": true },
                { "symbol": "middle", "stack": { "unwind": "dwarf" } },
                { "symbol": "work_on", "args": [{ "index": 0, "name": "x", "path": "->x" }] },
            ])),
            probe(&context, json!([
                { "symbol": "handle", "trace_context": { "arg": 0, "format": "traceparent" } },
            ])),
            probe(&go, json!([
                { "symbol": "main.handle", "args": [{ "index": 0, "name": "name", "type": "str" }] },
                { "symbol": "main.worker", "args": [{ "index": 0, "name": "n", "type": "i64" }] },
            ])),
        ],
    }));
    (config, vec![calls, context, go])
}

/// `spanprobe check --load` of `config` with `args`, needing `files`.
fn check_load(name: &str, config: &Path, files: &[PathBuf], args: &str) -> Script {
    let text = format!(
        "\"$SPANPROBE\" check --load {args} --config {}",
        config.display()
    );
    Script::new(name, text).file(config).with_files(files)
}

/// The programs a `check --load` report lists, after its line naming the kernel and the mode.
fn loaded(output: &ScriptOutput, machine: &Machine, mode: &str) -> Vec<String> {
    output.assert_success();
    let heading = format!(
        "Linux {} verified 8 eBPF programs for {mode}:",
        machine.release()
    );
    let (_, list) = output
        .stdout
        .split_once(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading:?} in {output}"));
    list.lines()
        .map(|line| {
            let (name, verified) = line
                .trim_start()
                .split_once(" (")
                .unwrap_or_else(|| panic!("not a program line: {line:?} in {output}"));
            assert!(
                verified.ends_with(" ms)") && verified.contains(" instructions verified, "),
                "{line:?}"
            );
            name.to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_program_verifies_on_every_kernel_and_what_one_lacks_is_refused_up_front() {
    support::needs_root!();
    let dir = Workdir::new();
    let (config, files) = every_program(&dir);
    let usdt = dir.c_program("usdt");
    let usdt_config = dir.write_named(
        "usdt",
        &json!({
            "probes": [{ "binary": usdt, "usdt": [
                { "probe": "app:request__start", "until": "app:request__done" },
            ] }],
        }),
    );

    // A target that finds processes by their executable loads the program that hears of the
    // programs processes start; one that finds none yet, every program built for anything its
    // functions may need: every feature on at once.
    let mut waiting: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    waiting["probes"].as_array_mut().unwrap().push(json!({
        "executable": "/opt/nothing/runs/this",
        "functions": [{ "symbol": "outer" }],
    }));
    let waiting_config = dir.write_named("waiting", &waiting);
    let waiting_files = files.clone();

    let cases = vec![
        Case::new(
            {
                let (config, files) = (config.clone(), files.clone());
                move |_| check_load("the best mode", &config, &files, "")
            },
            |machine, output, _| {
                // As `run` with a command (and this few probes) attaches them on every kernel:
                // in its processes only, without a word of falling back.
                assert_eq!(
                    loaded(output, machine, "uprobes in the command's processes only"),
                    PERF_EVENT
                );
                assert!(!output.stderr.contains("instead of"), "{output}");
            },
        ),
        Case::new(
            {
                let (config, files) = (config.clone(), files.clone());
                move |_| check_load("perf events", &config, &files, "--attach perf-event")
            },
            |machine, output, _| {
                assert_eq!(loaded(output, machine, "perf-event uprobes"), PERF_EVENT);
            },
        ),
        Case::new(
            move |_| check_load("uprobe_multi links", &config, &files, "--attach multi"),
            |machine, output, _| {
                if machine.has_uprobe_multi() {
                    assert_eq!(loaded(output, machine, "uprobe_multi links"), MULTI);
                } else {
                    assert_eq!(output.status, 1, "{output}");
                    assert_eq!(
                        output.stderr,
                        "spanprobe: --attach multi: the kernel has no uprobe_multi links (Linux 6.6+)\n"
                    );
                }
            },
        ),
        Case::new(
            move |_| {
                check_load(
                    "processes not started yet",
                    &waiting_config,
                    &waiting_files,
                    "",
                )
            },
            |_, output, _| {
                output.assert_success();
                for program in PERF_EVENT.iter().chain(&["spanprobe_exec"]) {
                    assert!(
                        output.stdout.contains(&format!("  {program} (")),
                        "{output}"
                    );
                }
            },
        ),
        Case::new(
            move |_| {
                check_load(
                    "a USDT semaphore",
                    &usdt_config,
                    std::slice::from_ref(&usdt),
                    "",
                )
            },
            |_, output, _| {
                // Semaphores are set by a command's own probes on every kernel.
                output.assert_success();
                assert!(output.stdout.contains("verified"), "{output}");
            },
        ),
    ];
    vm::run_matrix(&cases).await;
}
