//! Calls that never return, ended by what ended them: `exit`, `pthread_exit`, `longjmp`.

mod support;

use serde_json::json;
use support::scenario::{Scenario, all_returned, by_id, chain, incomplete, named, trace_calls};

#[tokio::test(flavor = "multi_thread")]
async fn exit_inside_a_call_ends_its_spans_as_errors() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    let functions = chain(&[
        json!({ "symbol": "about_to_exit", "return": { "type": "i32" } }),
        json!({ "symbol": "exit_now" }),
    ]);
    let config = s.config(&calls, functions);
    let (_, spans) = s
        .trace(&config, &[calls.to_str().unwrap(), "exit"])
        .exits(3)
        .await;
    assert_eq!(spans.len(), 5);
    let exit_now = named(&spans, "exit_now")[0];
    let about = named(&spans, "about_to_exit")[0];
    for span in [exit_now, about] {
        assert_eq!(incomplete(span), Some("thread_exit"));
        let status = span.span.status.as_ref().unwrap();
        assert_eq!(
            (status.code, status.message.as_str()),
            (
                2,
                "call did not return: the thread or process exited inside it"
            )
        );
        assert_eq!(span.int_attr("return_value"), None);
    }
    assert_eq!(exit_now.span.parent_span_id, about.span.span_id);
    assert!(exit_now.span.end_time_unix_nano <= about.span.end_time_unix_nano);
    assert!(all_returned(named(&spans, "outer")));
}

#[tokio::test(flavor = "multi_thread")]
async fn pthread_exit_inside_a_call_and_calls_after_it() {
    support::needs_root!();
    let functions = chain(&[json!({ "symbol": "thread_exit_now" })]);
    let (_, spans) = trace_calls(functions, &["thread-exit"]).await;
    assert_eq!(spans.len(), 4);
    assert_eq!(
        incomplete(named(&spans, "thread_exit_now")[0]),
        Some("thread_exit")
    );
    let ids = by_id(&spans);
    let inner = named(&spans, "inner")[0];
    assert_eq!(
        ids[&ids[&inner.span.parent_span_id].span.parent_span_id].name(),
        "outer"
    );
    assert!(all_returned(named(&spans, "outer")));
}

#[tokio::test(flavor = "multi_thread")]
async fn longjmp_out_of_calls_ends_them_as_unwound() {
    support::needs_root!();
    let functions = json!([
        { "symbol": "jump_from_here" },
        { "symbol": "jump_back" },
        { "symbol": "after_jump", "return": { "type": "i32" } },
    ]);
    let (_, spans) = trace_calls(functions, &["longjmp"]).await;
    assert_eq!(spans.len(), 3);
    let jump_back = named(&spans, "jump_back")[0];
    let jump_from = named(&spans, "jump_from_here")[0];
    assert_eq!(incomplete(jump_back), Some("unwound"));
    assert_eq!(incomplete(jump_from), Some("unwound"));
    assert_eq!(jump_back.span.parent_span_id, jump_from.span.span_id);
    // The call after the jump is a root of its own, with its real return value.
    let after = named(&spans, "after_jump")[0];
    assert!(after.span.parent_span_id.is_empty());
    assert_eq!(after.int_attr("return_value"), Some(42));
    assert_eq!(incomplete(after), None);
}
