//! calls.c's chain, outer(x) -> middle -> inner(x + 1), which most scenarios trace: the
//! functions to probe, and each tree of spans it makes, checked whole and reduced to its
//! numbers.

use serde_json::{Value, json};

use crate::support::{receiver::ReceivedSpan, scenario::named};

/// calls.c's chain outer(x) -> middle -> inner(x + 1), with every argument and return value.
pub fn chain_functions() -> Value {
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
pub struct Chain {
    /// The process, as `process.pid` says.
    pub pid: i64,
    /// The thread, as `thread.id` says.
    pub tid: i64,
    /// outer's x and return value, middle's return value, inner's x and return value.
    pub numbers: [i64; 5],
}

impl Chain {
    /// outer(x)'s tree as calls.c computes it (inner doubles, middle and outer add 1), on
    /// process `pid`'s thread `tid`.
    pub fn of(pid: i64, tid: i64, x: i64) -> Chain {
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
pub fn chains(spans: &[ReceivedSpan]) -> Vec<Chain> {
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
