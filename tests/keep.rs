//! Keep rules, `min_duration` and `keep: errors`: a call with no probed callee is decided by
//! the kernel when it returns (a call left out sends nothing), one with callees in userspace
//! once its trace is whole; either way, what is left out takes the spans under it along.

mod support;

use serde_json::{Value, json};
use support::{
    receiver::ReceivedSpan,
    scenario::{Scenario, assert_stderr_has, by_id, named, trace_calls},
};

/// calls.c's outer -> middle -> inner with `rules` added to each (by name), every return an
/// i64; `calls threads 3` makes thread t (1 to 3) call outer(t * 1000 + j) for j below 20, and outer(x)
/// returns 2x + 4, middle(x) 2x + 3, inner(x + 1) 2x + 2.
async fn chain_with(rules: Value) -> (std::process::Output, Vec<ReceivedSpan>) {
    let functions: Vec<Value> = ["outer", "middle", "inner"]
        .iter()
        .map(|name| {
            let mut function = json!({
                "symbol": name,
                "args": [{ "index": 0, "name": "x", "type": "i64" }],
                "return": { "type": "i64" },
            });
            if let Some(Value::Object(extra)) = rules.get(name) {
                for (key, value) in extra {
                    function[key] = value.clone();
                }
            }
            function
        })
        .collect();
    trace_calls(Value::Array(functions), &["threads", "3"]).await
}

/// The `x` of each span named `name`, sorted.
fn xs(spans: &[ReceivedSpan], name: &str) -> Vec<i64> {
    let mut xs: Vec<i64> = named(spans, name)
        .iter()
        .map(|s| s.int_attr("x").unwrap())
        .collect();
    xs.sort();
    xs
}

fn every_x() -> Vec<i64> {
    (1..=3)
        .flat_map(|t| (0..20).map(move |j| t * 1000 + j))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_left_out_at_return_sends_nothing() {
    support::needs_root!();
    // inner has no probed callee: its calls, all shorter than an hour, are left out by the
    // kernel, and their callers stay whole.
    let (output, spans) = chain_with(json!({ "inner": { "min_duration": "1h" } })).await;
    assert_eq!(xs(&spans, "outer"), every_x());
    assert_eq!(xs(&spans, "middle"), every_x());
    assert_eq!(xs(&spans, "inner"), [] as [i64; 0]);
    assert_stderr_has(&output, "below_min_duration=0");
    assert_stderr_has(&output, "left_out_at_return=60");

    // A failing leaf is kept: inner(x + 1) returns 2x + 2, above 6030 for x above 3014.
    let errors = json!({ "inner": {
        "keep": "errors",
        "return": { "type": "i64", "error_when": "> 6030" },
    } });
    let (output, spans) = chain_with(errors).await;
    assert_eq!(xs(&spans, "inner"), (3016..=3020).collect::<Vec<_>>());
    for inner in named(&spans, "inner") {
        // STATUS_CODE_ERROR.
        assert_eq!(
            inner.span.status.as_ref().map(|s| s.code),
            Some(2),
            "{inner:#?}"
        );
    }
    assert_eq!(xs(&spans, "outer").len(), 60);
    assert_stderr_has(&output, "left_out_at_return=55");
    assert_stderr_has(&output, "not_failed=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_with_callees_is_decided_with_its_tree() {
    support::needs_root!();
    // outer(x) returns 2x + 4, above 6030 for x above 3013: those six calls are kept with the
    // calls under them; the other outer calls go with theirs, decided in userspace.
    let errors = json!({ "outer": {
        "keep": "errors",
        "return": { "type": "i64", "error_when": "> 6030" },
    } });
    let (output, spans) = chain_with(errors).await;
    let failed: Vec<i64> = (3014..3020).collect();
    assert_eq!(xs(&spans, "outer"), failed);
    assert_eq!(xs(&spans, "middle"), failed);
    assert_eq!(
        xs(&spans, "inner"),
        failed.iter().map(|x| x + 1).collect::<Vec<_>>()
    );
    let ids = by_id(&spans);
    for inner in named(&spans, "inner") {
        let middle = ids[&inner.span.parent_span_id];
        assert_eq!(ids[&middle.span.parent_span_id].name(), "outer");
    }
    assert_stderr_has(&output, "not_failed=162");
    assert_stderr_has(&output, "left_out_at_return=0");

    // Both rules on the same leaf and its caller: middle's minimum leaves out every tree in
    // userspace, inner's every call in the kernel first.
    let both = json!({
        "middle": { "min_duration": "1h" },
        "inner": { "min_duration": "1h" },
    });
    let (output, spans) = chain_with(both).await;
    assert_eq!(xs(&spans, "outer"), every_x());
    assert_eq!(spans.len(), 60, "outer alone: {spans:#?}");
    assert_stderr_has(&output, "left_out_at_return=60");
    assert_stderr_has(&output, "below_min_duration=60");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_leaf_is_kept_and_usdt_spans_are_decided_at_their_end() {
    support::needs_root!();
    // slow(50) sleeps 50 ms: past a 10 ms minimum, short of a 1 s one.
    for (min, kept) in [("10ms", 1), ("1s", 0)] {
        let functions = json!([{ "symbol": "slow", "min_duration": min }]);
        let (output, spans) = trace_calls(functions, &["slow", "50"]).await;
        assert_eq!(named(&spans, "slow").len(), kept, "{min}");
        assert_stderr_has(&output, &format!("left_out_at_return={}", 1 - kept));
    }

    // usdt.c: steps (no probe inside them) are left out when they end; their requests stay.
    let s = Scenario::start().await;
    let binary = s.c_program("usdt");
    let usdt = json!([
        { "probe": "app:request__start", "until": "app:request__done", "span_name": "request" },
        { "probe": "app:step__start", "until": "app:step__done", "span_name": "step",
          "min_duration": "1h" },
    ]);
    let mut config = s.config(&binary, json!([]));
    config["probes"] = json!([{ "binary": binary, "usdt": usdt }]);
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    assert_eq!(named(&spans, "request").len(), 3);
    assert_eq!(named(&spans, "step").len(), 0);
    assert_stderr_has(&output, "left_out_at_return=4");
}

#[tokio::test(flavor = "multi_thread")]
async fn debian_s_sqlite3_failed_selects_alone() {
    support::needs_root!();
    // The shell prepares each statement; one SELECT fails. `when` leaves the other statements
    // out at entry, `keep: errors` the SELECT that succeeds at return.
    let s = Scenario::start().await;
    let functions = json!([{
        "symbol": "sqlite3_prepare_v2",
        "args": [{ "index": 1, "name": "sql", "type": "str" }],
        "return": { "name": "rc", "type": "i32", "error_when": "!= 0" },
        "keep": "errors",
        "when": { "sql": "prefix select" },
    }]);
    let config = s.config(std::path::Path::new("libsqlite3.so.0"), functions);
    let sql = "create table t(a int); insert into t values (1); select count(*) from t; \
               select * from missing; update t set a = 2;";
    // sqlite3 exits 1 for the failed statement, and spanprobe with it.
    let (output, spans) = s
        .trace(&config, &["sqlite3", ":memory:", sql])
        .exits(1)
        .await;
    let [failed] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(
        failed.str_attr("sql"),
        Some("select * from missing; update t set a = 2;")
    );
    assert_eq!(failed.int_attr("rc"), Some(1));
    assert_stderr_has(&output, "left_out_at_return=1");
    assert_stderr_has(&output, "filtered_by_when=3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_go_function_fails_when_it_returns_an_error() {
    support::needs_root!();
    // tests/programs/go: lookup([4 5 6], 5) finds it; lookup([4], 9) returns a non-nil error.
    let s = Scenario::start().await;
    let binary = support::go_build(s.path(), "go", "app");
    let functions = json!([{
        "symbol": "main.lookup",
        "args": [{ "index": 1, "name": "key", "type": "i64" }],
        "keep": "errors",
    }]);
    let (output, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let [failed] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(failed.int_attr("key"), Some(9));
    assert_eq!(failed.str_attr("error.type"), Some("*errors.errorString"));
    assert_stderr_has(&output, "left_out_at_return=1");
}

#[tokio::test]
async fn check_says_where_each_rule_is_decided() {
    let s = Scenario::start().await;
    let calls = s.calls("calls", &[]);
    let functions = json!([{
        "symbol": "inner",
        "args": [{ "index": 0, "name": "x", "type": "i64" }],
        "return": { "type": "i64", "error_when": "< 0" },
        "keep": "errors",
        "min_duration": "1ms",
        "when": { "x": "!= 7" },
    }]);
    let text = s.check(&s.config(&calls, functions), 0).await;
    for line in [
        "traced only when x != 7 (decided in the kernel at entry, before any memory is read",
        "spans shorter than 1ms and spans of calls that did not fail dropped (with the spans \
         under them; decided in the kernel when a call with no probed callee returns, \
         otherwise once its trace is whole)",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn keep_errors_needs_a_way_to_tell_a_failure() {
    let s = Scenario::start().await;
    let calls = s.calls("calls", &[]);
    let functions = json!([{ "symbol": "inner", "keep": "errors", "return": { "type": "i64" } }]);
    let error = s.check(&s.config(&calls, functions), 2).await;
    assert!(
        error.contains(
            "keep of `inner`: `keep: errors` keeps the calls that fail, and nothing \
                        tells a failure of `inner`: give its `return` an `error_when`"
        ),
        "{error}"
    );
    let functions = json!([{ "symbol": "inner", "keep": "failures" }]);
    let error = s.check(&s.config(&calls, functions), 2).await;
    assert!(error.contains("keep"), "{error}");
}
