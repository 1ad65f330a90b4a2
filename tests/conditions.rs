//! `when`: conditions on a call's captured arguments, decided in the kernel at entry; a call
//! that does not meet them is not traced, nor are the calls nested in it, and it is counted.

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use support::{
    receiver::ReceivedSpan,
    scenario::{Scenario, assert_stderr_has, by_id, named, trace_calls},
};

/// calls.c's chain outer(x) -> middle -> inner, outer with `args` and `when`.
fn chain(args: Value, when: Value) -> Value {
    json!([
        { "symbol": "outer", "args": args, "when": when },
        { "symbol": "middle" },
        { "symbol": "inner" },
    ])
}

/// The `x` of every traced outer call, each of whose chains must be whole: middle the child
/// of outer, inner of middle.
fn traced_outer(spans: &[ReceivedSpan]) -> BTreeSet<i64> {
    let ids = by_id(spans);
    for inner in named(spans, "inner") {
        let middle = ids[&inner.span.parent_span_id];
        assert_eq!(middle.name(), "middle");
        assert_eq!(ids[&middle.span.parent_span_id].name(), "outer");
    }
    let outer = named(spans, "outer");
    assert_eq!(named(spans, "middle").len(), outer.len());
    assert_eq!(named(spans, "inner").len(), outer.len());
    outer.iter().map(|s| s.int_attr("x").unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_that_do_not_meet_when_are_left_out_with_their_callees() {
    support::needs_root!();
    // `calls threads 3`: thread t calls outer(t * 1000 + j) for j below 20.
    let x = json!({ "index": 0, "name": "x", "type": "i64" });
    let (output, spans) = trace_calls(
        chain(json!([x]), json!({ "x": ">= 2005" })),
        &["threads", "3"],
    )
    .await;
    let expected: BTreeSet<i64> = (2005..2020).chain(3000..3020).collect();
    assert_eq!(traced_outer(&spans), expected);
    assert_stderr_has(&output, "filtered_by_when=25");

    // Every condition must hold: the same argument read as a 32-bit int too.
    let y = json!({ "index": 0, "name": "y", "type": "i32" });
    let (output, spans) = trace_calls(
        chain(json!([x, y]), json!({ "x": ">= 2005", "y": "< 3010" })),
        &["threads", "3"],
    )
    .await;
    let expected: BTreeSet<i64> = (2005..2020).chain(3000..3010).collect();
    assert_eq!(traced_outer(&spans), expected);
    assert_stderr_has(&output, "filtered_by_when=35");

    // Only the low byte, unsigned: x % 256 == 0xd0 is x = 2000 (0x7d0) alone, and `!=` the rest.
    let low = json!({ "index": 0, "name": "low", "type": "u8" });
    let (_, spans) = trace_calls(
        chain(json!([low]), json!({ "low": "== 0xd0" })),
        &["threads", "3"],
    )
    .await;
    assert_eq!(named(&spans, "outer").len(), 1, "{spans:#?}");
    assert_eq!(named(&spans, "outer")[0].int_attr("low"), Some(0xd0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usdt_probe_is_traced_when_its_arguments_say() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = support::pool::program(s.path());
    // pool:submit(task, request), once per task: two per request.
    let config = json!({
        "exporter": { "otlp": { "endpoint": s.receiver.grpc_endpoint() } },
        "probes": [{
            "binary": program,
            "usdt": [{
                "probe": "pool:submit",
                "args": [{ "index": 1, "name": "request" }],
                "when": { "request": ">= 30" },
            }],
        }],
    });
    let (output, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    let mut requests: Vec<i64> = spans
        .iter()
        .map(|s| s.int_attr("request").unwrap())
        .collect();
    requests.sort();
    assert_eq!(requests, [30, 30, 31, 31, 800, 800, 900, 900]);
    assert_stderr_has(&output, "filtered_by_when=8");
}

#[tokio::test]
async fn conditions_that_cannot_be_decided_are_refused() {
    let s = Scenario::start().await;
    let calls = s.calls("calls", &[]);
    let s = &s;
    let calls = &calls;
    let refused = |args: Value, when: Value| async move {
        s.check(&s.config(calls, chain(args, when)), 2).await
    };
    let x = json!({ "index": 0, "name": "x", "type": "i64" });
    let error = refused(json!([x]), json!({ "z": "== 1" })).await;
    assert!(
        error.contains(
            "probes[0].functions[0].when.z: `z` names no captured argument (captured: x)"
        ),
        "{error}"
    );
    let error = refused(json!([x]), json!({ "x": "prefix /api/" })).await;
    assert!(error.contains("is not a comparison"), "{error}");
    let text = json!({ "index": 0, "name": "text", "type": "str" });
    let error = refused(json!([text]), json!({ "text": "== 1" })).await;
    assert!(error.contains("`text` is a string or bytes"), "{error}");
    let low = json!({ "index": 0, "name": "low", "type": "u8" });
    let error = refused(json!([low]), json!({ "low": "== 300" })).await;
    assert!(
        error.contains("when.low of `outer`")
            && error.contains("`low` is a `u8`, which never holds 300"),
        "{error}"
    );
    let many: Vec<Value> = (0..5)
        .map(|i| json!({ "index": 0, "name": format!("a{i}"), "type": "i64" }))
        .collect();
    let when: serde_json::Map<String, Value> =
        (0..5).map(|i| (format!("a{i}"), json!("> 0"))).collect();
    let error = refused(Value::Array(many), Value::Object(when)).await;
    assert!(error.contains("5 conditions; at most 4"), "{error}");
}
