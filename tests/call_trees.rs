//! The trees calls make: one per thread, recursion past the depth bound and under a lower
//! limit, tail calls between probed functions, and sampling and `min_duration` deciding for
//! whole trees.

mod support;

use std::collections::HashSet;

use serde_json::json;
use support::scenario::{
    Scenario, all_returned, assert_stderr_has, by_id, chain, named, trace_calls, x_and_return,
};

#[tokio::test(flavor = "multi_thread")]
async fn threads_keep_their_own_trees() {
    support::needs_root!();
    let (_, spans) = trace_calls(chain(&[]), &["threads", "4"]).await;
    assert_eq!(spans.len(), 4 * 20 * 3);
    let ids = by_id(&spans);
    let mut threads = HashSet::new();
    for inner in named(&spans, "inner") {
        let middle = ids[&inner.span.parent_span_id];
        let outer = ids[&middle.span.parent_span_id];
        assert_eq!((middle.name(), outer.name()), ("middle", "outer"));
        assert!(outer.span.parent_span_id.is_empty());
        // One thread per tree, one tree per trace.
        let tid = inner.int_attr("thread.id");
        assert_eq!(middle.int_attr("thread.id"), tid);
        assert_eq!(outer.int_attr("thread.id"), tid);
        assert_eq!(inner.span.trace_id, outer.span.trace_id);
        assert_eq!(inner.int_attr("x"), outer.int_attr("x").map(|x| x + 1));
        // Each thread's numbers are its own: thread i calls outer(i * 1000 + j).
        threads.insert((tid, outer.int_attr("x").unwrap() / 1000));
    }
    assert_eq!(threads.len(), 4, "{threads:?}");
    let tids: HashSet<_> = threads.iter().map(|(tid, _)| *tid).collect();
    assert_eq!(tids.len(), 4);
    let traces: HashSet<_> = spans.iter().map(|s| s.span.trace_id.clone()).collect();
    assert_eq!(traces.len(), 80);
}

#[tokio::test(flavor = "multi_thread")]
async fn recursion_past_the_depth_bound_is_counted_and_harmless() {
    support::needs_root!();
    let recurse =
        json!({ "symbol": "recurse", "args": [{ "index": 0, "name": "depth", "type": "i64" }] });
    let (output, spans) = trace_calls(chain(&[recurse]), &["recurse", "40"]).await;
    // The outermost 32 levels (depth 40 down to 9) have spans, chained; 8 deeper calls do not.
    let recursion = named(&spans, "recurse");
    let mut depths: Vec<_> = recursion
        .iter()
        .map(|s| s.int_attr("depth").unwrap())
        .collect();
    depths.sort();
    assert_eq!(depths, (9..=40).collect::<Vec<_>>());
    let ids = by_id(&spans);
    for span in &recursion {
        let depth = span.int_attr("depth").unwrap();
        match span.span.parent_span_id.as_slice() {
            [] => assert_eq!(depth, 40),
            parent => assert_eq!(ids[parent].int_attr("depth"), Some(depth + 1)),
        }
    }
    assert_stderr_has(&output, "depth_exceeded=8");
    // The calls after it are untouched.
    assert_eq!(named(&spans, "outer").len(), 1);
    assert_eq!(named(&spans, "inner")[0].int_attr("x"), Some(2));
    assert!(all_returned(&spans));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lower_depth_limit_is_honoured() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let functions =
        json!([{ "symbol": "recurse", "args": [{ "index": 0, "name": "depth", "type": "i64" }] }]);
    let mut config = s.config(&calls, functions);
    config["limits"] = json!({ "max_depth": 4 });
    let (output, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "recurse", "10"])
        .exits(0)
        .await;
    let mut depths: Vec<_> = spans
        .iter()
        .map(|span| {
            span.int_attr("depth")
                .unwrap_or_else(|| panic!("a span without `depth`: {span:?}"))
        })
        .collect();
    depths.sort();
    assert_eq!(depths, [7, 8, 9, 10]);
    assert_stderr_has(&output, "depth_exceeded=6");
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_calls_between_probed_functions_pair_up() {
    support::needs_root!();
    let functions = chain(&[x_and_return("tail_outer"), x_and_return("tail_inner")]);
    let (output, spans) = trace_calls(functions, &["tailcall"]).await;
    assert!(all_returned(&spans), "no call is taken for unwound");
    // tail_outer jumped to tail_inner: both return together, with tail_inner's value.
    let outer_tail = named(&spans, "tail_outer")[0];
    let inner_tail = named(&spans, "tail_inner")[0];
    assert_eq!(inner_tail.span.parent_span_id, outer_tail.span.span_id);
    assert_eq!(
        (
            inner_tail.int_attr("x"),
            inner_tail.int_attr("return_value")
        ),
        (Some(2), Some(6))
    );
    assert_eq!(outer_tail.int_attr("return_value"), Some(6));
    // The calls after it pair up as usual.
    let ids = by_id(&spans);
    let inner = named(&spans, "inner")[0];
    let middle = ids[&inner.span.parent_span_id];
    assert_eq!(
        (middle.name(), ids[&middle.span.parent_span_id].name()),
        ("middle", "outer")
    );
    assert_stderr_has(&output, "lost=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn sampling_keeps_or_drops_whole_traces() {
    support::needs_root!();
    let functions = json!([
        {
            "symbol": "outer",
            "sample_rate": 0.5,
            "args": [{ "index": 0, "name": "x", "type": "i64" }],
        },
        { "symbol": "middle" },
        { "symbol": "inner", "sample_rate": 0 },
    ]);
    let (_, spans) = trace_calls(functions, &["threads", "4"]).await;
    // About half of the 80 traces are kept (5 standard deviations either way), each whole:
    // the inner calls' own rate 0 does not matter, the root's decides.
    let kept = named(&spans, "outer").len();
    assert!((18..=62).contains(&kept), "{kept} of 80 traces kept");
    assert_eq!(named(&spans, "middle").len(), kept);
    assert_eq!(named(&spans, "inner").len(), kept);
    let ids = by_id(&spans);
    for inner in named(&spans, "inner") {
        assert_eq!(
            ids[&ids[&inner.span.parent_span_id].span.parent_span_id].name(),
            "outer"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn min_duration_drops_short_spans_with_their_children() {
    support::needs_root!();
    // Every call takes microseconds: an hour's minimum on outer drops its whole tree, inner's
    // own zero minimum notwithstanding; recurse's zero minimum keeps all of it.
    let functions = json!([
        { "symbol": "outer", "min_duration": "1h" },
        { "symbol": "middle" },
        { "symbol": "inner", "min_duration": "0s" },
        { "symbol": "recurse", "min_duration": "0ns" },
    ]);
    let (output, spans) = trace_calls(functions, &["recurse", "3"]).await;
    // recurse(3) keeps its three levels; outer(1) and everything under it go.
    let names: Vec<_> = spans.iter().map(|s| s.name().to_owned()).collect();
    assert_eq!(names, ["recurse", "recurse", "recurse"], "{names:?}");
    assert_stderr_has(&output, "below_min_duration=3");
}
