//! `tests/programs/spawn`, a Go program whose traced calls start goroutines (nested three deep,
//! and through a goroutine with no span open), and what its spans must be: what the handoff
//! tests and the kernel matrix trace it with.

use serde_json::{Value, json};

use super::{receiver::ReceivedSpan, scenario::named};

/// Its traced functions, each with its `n`.
pub fn functions() -> Value {
    ["handle", "child", "grandchild", "leaf", "idle"]
        .into_iter()
        .map(|name| {
            json!({
                "symbol": format!("main.{name}"),
                "args": [{ "index": 0, "name": "n", "type": "i64" }],
            })
        })
        .collect()
}

/// The span named `name` with `n`: exactly one.
pub fn find<'a>(spans: &'a [ReceivedSpan], name: &str, n: i64) -> &'a ReceivedSpan {
    let found: Vec<_> = named(spans, name)
        .into_iter()
        .filter(|s| s.int_attr("n") == Some(n))
        .collect();
    let [span] = found[..] else {
        panic!("{name}({n}): {found:#?}")
    };
    span
}

/// Each goroutine's call is the child of the span its goroutine was started under, in its
/// trace: handle(n) -> child(n) -> grandchild(n) -> leaf(n), and handle(n) -> leaf(n + 100)
/// through relay, which has no span; idle(0), started before any span, is a trace alone.
pub fn assert_goroutine_tree(spans: &[ReceivedSpan]) {
    assert_eq!(spans.len(), 16, "{spans:#?}");
    let child_of = |child: &ReceivedSpan, parent: &ReceivedSpan| {
        assert_eq!(child.span.trace_id, parent.span.trace_id, "{child:#?}");
        assert_eq!(child.span.parent_span_id, parent.span.span_id, "{child:#?}");
    };
    for n in 1..=3 {
        let handle = find(spans, "main.handle", n);
        assert!(handle.span.parent_span_id.is_empty());
        // One, two and three goroutines deep.
        let child = find(spans, "main.child", n);
        child_of(child, handle);
        let grandchild = find(spans, "main.grandchild", n);
        child_of(grandchild, child);
        child_of(find(spans, "main.leaf", n), grandchild);
        // Started by a goroutine with no span open: the span its creator was started under.
        child_of(find(spans, "main.leaf", n + 100), handle);
    }
    let idle = find(spans, "main.idle", 0);
    assert!(idle.span.parent_span_id.is_empty());
    let in_idle_trace = spans
        .iter()
        .filter(|s| s.span.trace_id == idle.span.trace_id)
        .count();
    assert_eq!(in_idle_trace, 1);
}
