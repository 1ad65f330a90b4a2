//! Programs in C++, Rust and Go: their names demangled (C++ and Rust), an exception through
//! probed calls, Go functions' entry-only spans.

mod support;

use serde_json::json;
use support::scenario::{Scenario, incomplete, named, symbols};

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
    let (_, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .exits(128 + libc::SIGABRT)
        .await;
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
    let (_, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
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
async fn go_functions_get_entry_only_spans() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.fake_go();
    let config = s.config(&binary, symbols(&["handler"]));
    let (_, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span.bool_attr("spanprobe.entry_only"), Some(true));
        assert_eq!(span.span.start_time_unix_nano, span.span.end_time_unix_nano);
        assert!(span.span.status.as_ref().is_none_or(|s| s.code == 0));
    }
}
