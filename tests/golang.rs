//! Real Go programs, built with Debian's Go toolchain: arguments by their declared position
//! under Go's register ABI (strings with their lengths, ints, bools, slices, receivers), and
//! what cannot be read refused with the reason; spans that end at the functions' `RET`s, on
//! the stack of their goroutine, through yields, stack growth, panics and `runtime.Goexit`.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{
    go_build,
    receiver::ReceivedSpan,
    scenario::{Scenario, Workdir, assert_exit, assert_has_all, named},
};

/// `tests/programs/go`, built into `dir` as `app`.
fn go_program(dir: &Path) -> PathBuf {
    go_build(dir, "go", "app")
}

#[tokio::test(flavor = "multi_thread")]
async fn arguments_by_position_under_the_register_abi() {
    support::needs_root!();
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
            "Go function (go1.19): span on its goroutine, closed at 1 RET",
            "args name: str up to 64 bytes counted by RBX (RAX), n: i64 (RCX), flag: bool (RDI), \
             goroutine.id: i64 at offsets [",
        ],
    );
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
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
        .map(|l| (l.int_attr("key"), l.attr("items").is_some(), status(l)))
        .collect();
    keys.sort();
    // `(int, error)`: the error, non-nil for the missing key, gives the span its status.
    assert_eq!(
        keys,
        [
            (Some(5), true, (0, String::new())),
            (
                Some(9),
                true,
                (2, "returned a non-nil error: *errors.errorString".into())
            )
        ]
    );
    let [apply] = named(&spans, "main.(*order).apply")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(apply.int_attr("id"), Some(7));
    assert_eq!(apply.str_attr("code"), Some("xy"));
    for span in &spans {
        assert_eq!(span.bool_attr("spanprobe.entry_only"), None);
        assert!(span.span.end_time_unix_nano > span.span.start_time_unix_nano);
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
             `ptr` (its array), or an element by `path` (`[0]` is the first); its length counts \
             elements, not the bytes `str` or `bytes` would read",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_go_arguments_that_trace_as_written() {
    support::needs_root!();
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
    // The first result, when one register holds it, is the return value; a last `error`
    // needs nothing written.
    assert_has_all(
        &text,
        &[
            "      - symbol: main.handle\n        args:\n",
            "        return: { name: result, type: i64 }  # int in RAX\n",
            "        # a non-nil error (the last result) gives the span status ERROR by itself\n",
        ],
    );
    let (_, spans) = s
        .trace_yaml(&text, &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let [handle] = named(&spans, "main.handle")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(handle.str_attr("name"), Some("alpha"));
    assert_eq!(handle.int_attr("result"), Some(7));
    let [apply] = named(&spans, "main.(*order).apply")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(apply.str_attr("code"), Some("xy"));
    assert_eq!(apply.int_attr("result"), Some(9));
    let mut lookups: Vec<_> = named(&spans, "main.lookup")
        .iter()
        .map(|l| (l.int_attr("result"), status(l).0))
        .collect();
    lookups.sort();
    assert_eq!(lookups, [(Some(-1), 2), (Some(1), 0)]);
}

/// A span's status: (code, message); (0, "") when unset.
fn status(span: &ReceivedSpan) -> (i32, String) {
    span.span
        .status
        .as_ref()
        .map_or((0, String::new()), |s| (s.code, s.message.clone()))
}

/// The span whose id is `span`'s parent id, among `spans`.
fn parent_of<'a>(span: &ReceivedSpan, spans: &'a [ReceivedSpan]) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|other| other.span.span_id == span.span.parent_span_id)
}

/// Go calls end at their `RET`s, keyed by goroutine: every span below is checked exactly, and
/// the program prints and exits as it does untraced.
#[tokio::test(flavor = "multi_thread")]
async fn go_calls_end_at_their_returns_on_their_goroutine() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = go_build(s.path(), "gocalls", "gocalls");
    let text = json!({ "index": 0, "name": "text", "type": "str" });
    let n = json!({ "index": 0, "name": "n", "type": "i64" });
    let functions = json!([
        { "symbol": "main.step", "args": [text], "return": { "name": "doubled", "type": "i64" } },
        { "symbol": "main.parse", "args": [text], "return": { "name": "n", "type": "i64" },
          "stack": true },
        { "symbol": "main.fib", "args": [n], "return": { "name": "r", "type": "i64" } },
        { "symbol": "main.deep", "args": [n] },
        { "symbol": "main.explode", "args": [n] },
        { "symbol": "main.rescue", "return": { "name": "result", "type": "i64" } },
        { "symbol": "main.quit" },
        { "symbol": "main.check" },
        { "symbol": "main.hang" },
        { "symbol": "main.forever" },
    ]);
    let config = s.config(&binary, functions);
    assert_has_all(
        &s.check(&config, 0).await,
        &[
            "10 functions to probe",
            "  main.parse: main.parse at address 0x",
            "(+4, the stack check's branch), Go function (go1.19): span on its goroutine, closed at \
             2 RETs",
            "): closes the span, status ERROR when the error (RBX) is non-nil; single-stepped",
            "): closes the span, status ERROR when the error (RAX) is non-nil; single-stepped",
            "  runtime.goexit0 at file offset 0x",
            "  runtime.recovery at file offset 0x",
        ],
    );
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(3).await;
    assert_eq!(
        support::stdout(&output),
        "[2 44 -1 8] 55 1000 -3 empty <nil> -1 0\n"
    );

    // Four goroutines yield inside step and inside parse, which step calls: each parse is the
    // child of the step on its goroutine, whichever threads they ran on.
    let mut steps: Vec<_> = named(&spans, "main.step")
        .into_iter()
        .map(|step| {
            let [parse] = spans
                .iter()
                .filter(|p| p.name() == "main.parse" && p.span.parent_span_id == step.span.span_id)
                .collect::<Vec<_>>()[..]
            else {
                panic!("one parse under {step:?}")
            };
            assert_eq!(parse.span.trace_id, step.span.trace_id);
            assert_eq!(parse.str_attr("text"), step.str_attr("text"));
            // Go's stacks walk by frame pointer, to where every goroutine starts.
            let stack = parse.str_attr("code.stacktrace").unwrap();
            assert!(
                stack.starts_with("main.parse (") && stack.contains("\nmain.step ("),
                "{stack}"
            );
            assert!(
                stack
                    .lines()
                    .last()
                    .unwrap()
                    .starts_with("runtime.goexit ("),
                "{stack}"
            );
            assert_eq!(parse.attr("spanprobe.stack.truncated"), None, "{stack}");
            assert_eq!(
                parse.int_attr("goroutine.id"),
                step.int_attr("goroutine.id")
            );
            assert!(step.span.parent_span_id.is_empty());
            (
                step.str_attr("text").unwrap().to_owned(),
                step.int_attr("doubled"),
                parse.int_attr("n"),
                status(parse),
                parse.str_attr("error.type").map(str::to_owned),
            )
        })
        .collect();
    steps.sort();
    let ok = (0, String::new());
    assert_eq!(
        steps,
        [
            ("1".into(), Some(2), Some(1), ok.clone(), None),
            ("22".into(), Some(44), Some(22), ok.clone(), None),
            ("4".into(), Some(8), Some(4), ok.clone(), None),
            (
                "x".into(),
                Some(-1),
                Some(0),
                (2, "returned a non-nil error: *main.parseError".into()),
                Some("*main.parseError".into())
            ),
        ]
    );
    assert_eq!(named(&spans, "main.parse").len(), 4);

    // Recursion: fib(10) makes 177 calls, each returning the sum of its children's results.
    let fibs = named(&spans, "main.fib");
    assert_eq!(fibs.len(), 177);
    for fib in &fibs {
        let n = fib.int_attr("n").unwrap();
        let children: Vec<_> = fibs
            .iter()
            .filter(|c| c.span.parent_span_id == fib.span.span_id)
            .collect();
        if n < 2 {
            assert!(children.is_empty());
            assert_eq!(fib.int_attr("r"), Some(n));
        } else {
            let mut ns: Vec<_> = children.iter().map(|c| c.int_attr("n").unwrap()).collect();
            ns.sort();
            assert_eq!(ns, [n - 2, n - 1]);
            let sum: i64 = children.iter().map(|c| c.int_attr("r").unwrap()).sum();
            assert_eq!(fib.int_attr("r"), Some(sum));
        }
    }

    // deep(2000) grows the stack past 500 KB, copied elsewhere several times while the calls
    // are in progress: the outermost 32 (the depth limit) return, each the parent of the next.
    let mut deeps: Vec<_> = named(&spans, "main.deep");
    deeps.sort_by_key(|d| -d.int_attr("n").unwrap());
    assert_eq!(deeps.len(), 32);
    for (k, pair) in deeps.windows(2).enumerate() {
        assert_eq!(pair[0].int_attr("n"), Some(2000 - k as i64));
        assert_eq!(pair[1].span.parent_span_id, pair[0].span.span_id);
        assert_eq!(status(pair[1]), ok);
    }
    assert_has_all(&support::stderr(&output), &["depth_exceeded=1969"]);

    // A panic in explode, recovered in rescue: explode is closed as unwound, rescue returns.
    let [rescue] = named(&spans, "main.rescue")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(rescue.int_attr("result"), Some(-3));
    assert_eq!(status(rescue), ok);
    let unwound = (
        2,
        "call did not return: a panic unwound it, recovered by a caller".into(),
    );
    let mut explodes: Vec<_> = named(&spans, "main.explode")
        .into_iter()
        .map(|e| {
            let parent = parent_of(e, &spans).map(ReceivedSpan::name);
            (
                e.int_attr("n"),
                parent,
                status(e),
                e.str_attr("spanprobe.incomplete"),
            )
        })
        .collect();
    explodes.sort();
    assert_eq!(
        explodes,
        [
            // guard(0), after guard(1) (unprobed) recovered: the same place on the stack.
            (Some(0), None, ok.clone(), None),
            (Some(1), None, unwound.clone(), Some("unwound")),
            (
                Some(3),
                Some("main.rescue"),
                unwound.clone(),
                Some("unwound")
            ),
            // shield(4) (unprobed) recovered, and its goroutine ended: runtime.recovery ends
            // explode as unwound, before goexit0 could.
            (Some(4), None, unwound, Some("unwound")),
        ]
    );

    // `error` alone: in RAX.
    let mut checks: Vec<_> = named(&spans, "main.check")
        .iter()
        .map(|c| status(c))
        .collect();
    checks.sort();
    assert_eq!(
        checks,
        [
            ok.clone(),
            (2, "returned a non-nil error: *errors.errorString".into())
        ]
    );

    // runtime.Goexit inside quit ends its goroutine, and its span.
    let [quit] = named(&spans, "main.quit")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(
        quit.str_attr("spanprobe.incomplete"),
        Some("goroutine_exit")
    );
    assert_eq!(
        status(quit).1,
        "call did not return: its goroutine ended inside it (runtime.Goexit)"
    );
    // hang is still waiting when the program exits: ended with the process, by userspace.
    let [hang] = named(&spans, "main.hang")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(hang.str_attr("spanprobe.incomplete"), Some("thread_exit"));
    assert_eq!(hang.attr("thread.id"), None);
    assert!(hang.int_attr("goroutine.id").is_some());
    // forever has no RET: its span is sent at entry, on its goroutine.
    let [forever] = named(&spans, "main.forever")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(forever.bool_attr("spanprobe.entry_only"), Some(true));
    assert!(forever.int_attr("goroutine.id").is_some());
    assert_eq!(spans.len(), 4 + 4 + 177 + 32 + 4 + 1 + 1 + 2 + 1 + 1);

    // What needs a return is refused there, with the reason.
    let refused = json!([
        { "symbol": "main.forever", "return": { "type": "i64" } },
        { "symbol": "main.forever", "min_duration": "1ms" },
    ]);
    assert_has_all(
        &s.check(&s.config(&binary, refused), 2).await,
        &[
            "functions[0].return: ",
            "is a Go binary whose function `main.forever` has no RET instruction (it never \
             returns: it loops, panics or jumps away), so its spans are entry-only: remove \
             `return`",
            "functions[1].min_duration: ",
            "so its spans are entry-only, with no duration: remove `min_duration`",
        ],
    );
}

/// Debian's own gofmt, stripped (no symbol table, no DWARF): its functions are found by the
/// names in `.gopclntab`, and its calls end at their `RET`s, per goroutine (gofmt formats
/// files concurrently). The program's output and exit status are its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_stripped_go_program_is_probed_by_the_names_its_runtime_keeps() {
    support::needs_root!();
    const GOFMT: &str = "/usr/lib/go-1.19/bin/gofmt";
    let s = Scenario::start().await;
    let symbols = support::spanprobe_with(&["symbols", GOFMT, "main.process*"]).await;
    assert_exit(&symbols, 0);
    assert!(
        support::stdout(&symbols).ends_with(" main.processFile\n"),
        "{}",
        support::stdout(&symbols)
    );
    let files = s.path().join("src");
    std::fs::create_dir(&files).unwrap();
    for (name, text) in [
        (
            "a.go",
            "package main\nfunc a( ) {}\nfunc b() int { return 1 }\n",
        ),
        ("b.go", "package main\n\nfunc c() {}\n"),
        ("c.go", "package main\nfunc broken( {\n"),
    ] {
        std::fs::write(files.join(name), text).unwrap();
    }
    let functions = support::scenario::symbols(&[
        "main.processFile",
        "go/parser.ParseFile",
        "go/parser.(*parser).parseFuncDecl",
        "main.format",
    ]);
    let config = s.config(GOFMT, functions);
    let (output, spans) = s
        .trace(&config, &[GOFMT, "-l", files.to_str().unwrap()])
        .exits(2)
        .await;
    // a.go needs formatting, b.go does not, c.go does not parse.
    assert_eq!(
        support::stdout(&output),
        format!("{}\n", files.join("a.go").display())
    );
    let mut files_seen = Vec::new();
    for file in named(&spans, "main.processFile") {
        let children = |name: &str| -> Vec<&ReceivedSpan> {
            spans
                .iter()
                .filter(|c| c.name() == name && c.span.parent_span_id == file.span.span_id)
                .collect()
        };
        let [parse] = children("go/parser.ParseFile")[..] else {
            panic!("one ParseFile under {file:?}")
        };
        let declarations = spans
            .iter()
            .filter(|d| d.span.parent_span_id == parse.span.span_id)
            .count();
        files_seen.push((declarations, children("main.format").len()));
        assert_eq!(status(file), (0, String::new()));
    }
    files_seen.sort();
    // (functions declared, formatted): c.go stops at its one broken declaration.
    assert_eq!(files_seen, [(1, 0), (1, 1), (2, 1)]);
    assert_eq!(spans.len(), 3 + 3 + 4 + 2);
}

/// A cgo program: its C functions are told from its Go ones by the runtime's function table,
/// and probed as C (System V arguments, a uretprobe on the thread's stack), its Go ones as Go.
#[tokio::test(flavor = "multi_thread")]
async fn the_c_functions_of_a_cgo_program_are_probed_as_c() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = go_build(s.path(), "cgo", "cgoapp");
    let functions = json!([
        { "symbol": "c_sum",
          "args": [{ "index": 0, "name": "n", "type": "i64" }],
          "return": { "name": "sum", "type": "i64" } },
        { "symbol": "c_square" },
        { "symbol": "main.total",
          "args": [{ "index": 0, "name": "n", "type": "i64" }],
          "return": { "name": "sum", "type": "i64" } },
    ]);
    let config = s.config(&binary, functions);
    let check = s.check(&config, 0).await;
    assert_has_all(
        &check,
        &[
            "args n: i64 (RDI); return sum: i64 (RAX)\n",
            "Go function (go1.19): span on its goroutine, closed at 1 RET; args n: i64 (RAX)",
        ],
    );
    let c_sum = check
        .lines()
        .find(|line| line.contains("c_sum: c_sum"))
        .unwrap();
    assert!(!c_sum.contains("Go function"), "{c_sum}");
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    assert_eq!(support::stdout(&output), "30 385\n");
    let mut sums: Vec<_> = named(&spans, "c_sum")
        .iter()
        .map(|sum| {
            let squares = spans
                .iter()
                .filter(|c| c.name() == "c_square" && c.span.parent_span_id == sum.span.span_id)
                .count();
            (sum.int_attr("n"), sum.int_attr("sum"), squares)
        })
        .collect();
    sums.sort();
    assert_eq!(sums, [(Some(4), Some(30), 4), (Some(10), Some(385), 10)]);
    let mut totals: Vec<_> = named(&spans, "main.total")
        .iter()
        .map(|t| {
            (
                t.int_attr("n"),
                t.int_attr("sum"),
                t.int_attr("goroutine.id").is_some(),
            )
        })
        .collect();
    totals.sort();
    assert_eq!(
        totals,
        [(Some(4), Some(30), true), (Some(10), Some(385), true)]
    );
    assert_eq!(spans.len(), 2 + 14 + 2);
}

/// Two Go processes at once: Go puts its goroutines at the same addresses in every process, so
/// their stacks are told apart by process too. Two copies of the same program recurse at the
/// same time; every span's parent is in its own process, and none is cut short.
#[tokio::test(flavor = "multi_thread")]
async fn goroutines_of_two_processes_keep_their_own_stacks() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = go_build(s.path(), "gocalls", "gocalls");
    let n = json!({ "index": 0, "name": "n", "type": "i64" });
    let config = s.config(&binary, json!([{ "symbol": "main.deep", "args": [n] }]));
    let app = binary.to_str().unwrap();
    let both = format!("{app} & {app}; wait");
    let (output, spans) = s.trace(&config, &["sh", "-c", &both]).exits(0).await;
    let deeps = named(&spans, "main.deep");
    assert_eq!(deeps.len(), 64, "{}", support::stderr(&output));
    let mut roots = 0;
    for deep in &deeps {
        assert_eq!(status(deep), (0, String::new()));
        match parent_of(deep, &spans) {
            Some(parent) => {
                assert_eq!(
                    parent.resource_int("process.pid"),
                    deep.resource_int("process.pid")
                );
                assert_eq!(parent.int_attr("n"), deep.int_attr("n").map(|n| n + 1));
            }
            None => {
                assert_eq!(deep.int_attr("n"), Some(2000));
                roots += 1;
            }
        }
    }
    assert_eq!(roots, 2);
}
