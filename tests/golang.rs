//! Real Go programs, built with Debian's Go toolchain: arguments by their declared position
//! under Go's register ABI (strings with their lengths, ints, bools, slices, receivers), and
//! what cannot be read refused with the reason.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::scenario::{Scenario, Workdir, assert_exit, assert_has_all, named};

/// `tests/programs/go`, built into `dir` as `app`.
fn go_program(dir: &Path) -> PathBuf {
    let output = dir.join("app");
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&output)
        .arg(".")
        .current_dir(support::programs().join("go"))
        .output()
        .expect("go runs (scripts/setup.sh installs golang-go)");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_by_position_under_the_register_abi() {
    let s = Scenario::start().await;
    let binary = go_program(s.path());
    let functions = json!([
        { "symbol": "main.handle", "args": [
            { "index": 0, "name": "name", "type": "str" },
            { "index": 1, "name": "n", "type": "i64" },
            { "index": 2, "name": "flag", "type": "bool" },
        ] },
        { "symbol": "main.lookup", "args": [
            { "index": 0, "name": "items", "type": "ptr" },
            { "index": 1, "name": "key", "type": "i64" },
        ] },
        // The receiver is parameter 0; the float64 takes no integer register, so `code` is
        // in the second one.
        { "symbol": "main.(*order).apply", "args": [
            { "index": 0, "name": "id", "type": "i64", "offsets": [0] },
            { "index": 2, "name": "code", "type": "str" },
        ] },
        { "symbol": "main.worker", "args": [{ "index": 0, "name": "n", "type": "i64" }] },
    ]);
    let config = s.config(&binary, functions);
    assert_has_all(
        &s.check(&config, 0).await,
        &[
            "Go function (go1.19): entry-only (no return probe)",
            "args name: str up to 64 bytes counted by RBX (RAX), n: i64 (RCX), flag: bool (RDI), \
             goroutine.id: i64 at offsets [",
        ],
    );
    let (output, spans) = s.trace_ok(&config, &[binary.to_str().unwrap()]).await;
    // The program runs as without spanprobe.
    assert_eq!(support::stdout(&output), "16 1 <nil> not found 12\n");
    let [handle] = named(&spans, "main.handle")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(handle.str_attr("name"), Some("alpha"));
    assert_eq!(handle.int_attr("n"), Some(2));
    assert_eq!(handle.bool_attr("flag"), Some(true));
    let mut keys: Vec<_> = named(&spans, "main.lookup")
        .iter()
        .map(|l| (l.int_attr("key"), l.attr("items").is_some()))
        .collect();
    keys.sort();
    assert_eq!(keys, [(Some(5), true), (Some(9), true)]);
    let [apply] = named(&spans, "main.(*order).apply")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(apply.int_attr("id"), Some(7));
    assert_eq!(apply.str_attr("code"), Some("xy"));
    for span in &spans {
        assert_eq!(span.bool_attr("spanprobe.entry_only"), Some(true));
    }
    // Every span says which goroutine ran it: main's for the calls above, one of its own for
    // each worker.
    let main = handle.int_attr("goroutine.id").expect("goroutine.id");
    assert_eq!(apply.int_attr("goroutine.id"), Some(main));
    let mut workers: Vec<_> = named(&spans, "main.worker")
        .iter()
        .map(|w| (w.int_attr("n"), w.int_attr("goroutine.id")))
        .collect();
    workers.sort();
    let ids: std::collections::HashSet<_> = workers.iter().map(|(_, id)| *id).collect();
    assert_eq!(workers.len(), 3, "{workers:?}");
    assert_eq!(ids.len(), 3, "{workers:?}");
    assert!(!ids.contains(&Some(main)), "{workers:?}");
    assert_eq!(
        workers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
}

#[tokio::test]
async fn what_go_passes_elsewhere_is_refused_with_the_reason() {
    let dir = Workdir::new();
    let binary = go_program(dir.path());
    let functions = json!([
        { "symbol": "main.(*order).apply", "args": [
            { "index": 1, "name": "rate", "type": "i64" },
            { "index": 3, "name": "missing", "type": "i64" },
        ] },
        { "symbol": "main.lookup", "args": [{ "index": 0, "name": "items", "type": "i64" }] },
    ]);
    let config = json!({ "probes": [support::scenario::probe(&binary, functions)] });
    assert_has_all(
        &dir.check(&config, 2).await,
        &[
            "functions[0].args[0]: main.(*order).apply: `rate` (float64) is in a floating-point \
             register, which uprobes do not capture",
            "functions[0].args[1]: main.(*order).apply: argument 3 does not exist: it has 3 \
             parameters",
            "functions[1].args[0]: main.lookup: `items` is a Go []int of 3 words: read it as \
             `str` or `bytes` (its length is the second word) or as `ptr` (its first word)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_go_arguments_that_trace_as_written() {
    let s = Scenario::start().await;
    let binary = go_program(s.path());
    let init = support::spanprobe_with(&["init", binary.to_str().unwrap(), "main.*"]).await;
    assert_exit(&init, 0);
    let text = support::stdout(&init);
    assert_has_all(
        &text,
        &[
            "          - { index: 0, name: name, type: str }  # string in RAX, RBX\n",
            "          - { index: 2, name: flag, type: bool }  # bool in RDI\n",
            "          # rate (float64): in a floating-point register, which uprobes do not \
             capture\n",
            "          - { index: 2, name: code, type: str }  # string in RBX, RCX\n",
        ],
    );
    // No `return`: Go functions get entry-only spans.
    assert!(!text.contains("return:"), "{text}");
    let (_, spans) = s.trace_yaml(&text, &[binary.to_str().unwrap()]).await;
    let [handle] = named(&spans, "main.handle")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(handle.str_attr("name"), Some("alpha"));
    let [apply] = named(&spans, "main.(*order).apply")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(apply.str_attr("code"), Some("xy"));
}
