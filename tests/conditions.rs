//! `when`: conditions on a call's captured arguments, decided in the kernel at entry; a call
//! that does not meet them is not traced, nor are the calls nested in it, and it is counted.

mod support;

use std::{collections::BTreeSet, path::Path};

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

/// The spans of one run of `binary` traced with `config`, leaving out those of earlier runs
/// the receiver holds.
async fn new_spans(s: &Scenario, config: &Value, binary: &Path) -> Vec<ReceivedSpan> {
    let before = s.receiver.spans().len();
    let (_, mut spans) = s.trace(config, &[binary.to_str().unwrap()]).exits(0).await;
    spans.drain(..before);
    spans
}

/// `what` of the spans of one run of `binary` with `function` traced.
async fn traced_with<T>(
    s: &Scenario,
    binary: &Path,
    function: Value,
    what: impl FnOnce(&[ReceivedSpan]) -> T,
) -> T {
    let config = s.config(binary, json!([function]));
    what(&new_spans(s, &config, binary).await)
}

/// The `rid` of each `handle` call of fields.c traced with `when` on its request's members:
/// `{7, /index.html, alice}`, then `{8, NULL, NULL}`, then a NULL request (no `rid`, `-1`).
async fn handled_when(s: &Scenario, binary: &Path, when: Value) -> Vec<Option<i64>> {
    let member = |name: &str, path: &str| json!({ "index": 0, "name": name, "path": path });
    let mut path = member("path", "->path");
    path["type"] = json!("str");
    let functions = json!([{
        "symbol": "handle",
        // `rid`'s and `user`'s types are DWARF's.
        "args": [member("rid", "->rid"), path, member("user", "->user->name")],
        "when": when,
    }]);
    let spans = new_spans(s, &s.config(binary, functions), binary).await;
    let mut calls = named(&spans, "handle");
    calls.sort_by_key(|span| span.span.start_time_unix_nano);
    calls.iter().map(|call| call.int_attr("rid")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn strings_and_members_compared_with_texts() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = support::compile_c(
        &support::programs().join("fields.c"),
        s.path(),
        "fields",
        &[],
    );
    let rids = |when: Value| handled_when(&s, &binary, when);
    assert_eq!(rids(json!({ "path": "== /index.html" })).await, [Some(7)]);
    // The whole string: a shorter text is not it, though it starts it.
    assert_eq!(rids(json!({ "path": "== /index.htm" })).await, []);
    assert_eq!(
        rids(json!({ "path": "prefix /index.htm" })).await,
        [Some(7)]
    );
    // A NULL string, and a NULL request, equal no text.
    assert_eq!(
        rids(json!({ "path": "!= /index.html" })).await,
        [Some(8), None]
    );
    // A `char[16]` member two pointers away, and a number DWARF types, together.
    assert_eq!(
        rids(json!({ "user": "prefix ali", "rid": "< 8" })).await,
        [Some(7)]
    );
    assert_eq!(rids(json!({ "user": "prefix alf" })).await, []);
}

#[tokio::test(flavor = "multi_thread")]
async fn counted_strings_and_bytes_compared_with_texts() {
    support::needs_root!();
    let s = Scenario::start().await;
    let rusty = s.rusty(true);
    // label("temperature", [1, 2, 0xab]) then label("x" * 100, []); `name` and `key` are
    // counted by the next argument, and `name` is followed by more text in memory.
    let labels = |when: Value| {
        let label = json!({
            "symbol": "rusty::label",
            "args": [
                { "index": 0, "name": "name", "type": "str", "len_arg": 1, "max_len": 16 },
                { "index": 2, "name": "key", "type": "bytes", "len_arg": 3, "len": 8 },
            ],
            "when": when,
        });
        traced_with(&s, &rusty, label, |spans| {
            let mut names: Vec<String> = named(spans, "rusty::label")
                .iter()
                .map(|span| span.str_attr("name").unwrap().to_owned())
                .collect();
            names.sort();
            names
        })
    };
    assert_eq!(
        labels(json!({ "name": "== temperature" })).await,
        ["temperature"]
    );
    assert_eq!(
        labels(json!({ "name": "== temperature-and" })).await,
        [] as [&str; 0]
    );
    // Compared in full, past the 16 bytes captured.
    assert_eq!(
        labels(json!({ "name": format!("prefix {}", "x".repeat(40)) })).await,
        ["x".repeat(16)]
    );
    assert_eq!(
        labels(json!({ "key": r#"prefix "\x01\x02""# })).await,
        ["temperature"]
    );
    assert_eq!(labels(json!({ "key": r#"== """# })).await, ["x".repeat(16)]);

    // A `&str` member, its length beside its pointer.
    let places = |when: Value| {
        let record = json!({
            "symbol": "rusty::record",
            "args": [{ "index": 0, "name": "place", "path": "->place" }],
            "when": when,
        });
        traced_with(&s, &rusty, record, |spans| {
            named(spans, "rusty::record").len()
        })
    };
    assert_eq!(places(json!({ "place": "== temperature" })).await, 1);
    assert_eq!(places(json!({ "place": "prefix temperature-" })).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usdt_string_decides_its_span_and_the_spans_inside() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("usdt");
    // handle(1, "alpha"), handle(2, "beta") (which ends early), handle(3, "gamma"); each but
    // the second runs two steps inside its request.
    let usdt = json!([
        { "probe": "app:request__start", "until": "app:request__done", "span_name": "request",
          "args": [{ "index": 1, "name": "name", "type": "str" }],
          "when": { "name": "!= alpha" } },
        { "probe": "app:step__start", "until": "app:step__done", "span_name": "step" },
    ]);
    let mut config = s.config(&binary, json!([]));
    config["probes"] = json!([{ "binary": binary, "usdt": usdt }]);
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    let mut requests: Vec<&str> = named(&spans, "request")
        .iter()
        .map(|span| span.str_attr("name").unwrap())
        .collect();
    requests.sort();
    assert_eq!(requests, ["beta", "gamma"]);
    let ids = by_id(&spans);
    let steps = named(&spans, "step");
    assert_eq!(steps.len(), 2, "{spans:#?}");
    for step in steps {
        assert_eq!(
            ids[&step.span.parent_span_id].str_attr("name"),
            Some("gamma")
        );
    }
    assert_stderr_has(&output, "filtered_by_when=1");
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
    assert!(
        error.contains("when.x: `prefix` compares strings and bytes; this value is a `i64`"),
        "{error}"
    );
    let error = refused(json!([x]), json!({ "x": "~ 1" })).await;
    assert!(error.contains("`~ 1` is not a comparison"), "{error}");
    let text = json!({ "index": 0, "name": "text", "type": "str" });
    let error = refused(json!([text]), json!({ "text": "< abc" })).await;
    assert!(
        error.contains("a `str` is compared with ==, != or prefix, not with `< abc`"),
        "{error}"
    );
    let long = format!("prefix {}", "a".repeat(65));
    let error = refused(json!([text]), json!({ "text": long })).await;
    assert!(
        error.contains("the text is 65 bytes; at most 64"),
        "{error}"
    );
    let low = json!({ "index": 0, "name": "low", "type": "u8" });
    let error = refused(json!([low]), json!({ "low": "== 300" })).await;
    assert!(
        error.contains("when.low: a `u8` never holds 300"),
        "{error}"
    );
    let many: Vec<Value> = (0..5)
        .map(|i| json!({ "index": 0, "name": format!("a{i}"), "type": "i64" }))
        .collect();
    let when: serde_json::Map<String, Value> =
        (0..5).map(|i| (format!("a{i}"), json!("> 0"))).collect();
    let error = refused(Value::Array(many), Value::Object(when)).await;
    assert!(error.contains("5 conditions; at most 4"), "{error}");

    // A member's type is DWARF's: resolution checks the conditions on it.
    let fields = support::compile_c(
        &support::programs().join("fields.c"),
        s.path(),
        "fields",
        &[],
    );
    let functions = json!([{
        "symbol": "handle",
        "args": [{ "index": 0, "name": "rid", "path": "->rid" }],
        "when": { "rid": "prefix 7" },
    }]);
    let error = s.check(&s.config(&fields, functions), 2).await;
    assert!(
        error.contains("when.rid of `handle`")
            && error.contains("`prefix` compares strings and bytes; this value is a `i32`"),
        "{error}"
    );
}
