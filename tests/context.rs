//! Trace context: a probed function that receives its caller's W3C trace context joins the
//! caller's trace, as the child of the caller's span; sampling follows the parent unless
//! `OTEL_TRACES_SAMPLER` says otherwise; invalid contexts start new traces and are counted.

mod support;

use support::{
    context::{self, PARENT, PARENT_IS_REMOTE, TRACE, hex},
    receiver::ReceivedSpan,
    scenario::{Scenario, assert_stderr_has, by_id, named},
};

/// The traceparents `context` is run with: handle(traceparent, n) is called with n = 1, 2...
fn traceparents() -> Vec<String> {
    vec![
        format!("00-{TRACE}-{PARENT}-01"),                  // 1: sampled
        format!("00-{TRACE}-{PARENT}-00"),                  // 2: not sampled
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()), // 3: uppercase hex
        format!("01-{TRACE}-{PARENT}-01"),                  // 4: unknown version
        format!("00-{}-{PARENT}-01", "0".repeat(32)),       // 5: all-zero trace id
        format!("00-{TRACE}-{PARENT}-01-extra"),            // 6: too long
        String::new(),                                      // 7: empty
    ]
}

/// Each span by the `n` it was called with, as (name, n).
fn by_call(spans: &[ReceivedSpan]) -> Vec<(String, i64)> {
    let mut calls: Vec<_> = spans
        .iter()
        .map(|span| (span.name().to_owned(), span.int_attr("n").unwrap()))
        .collect();
    calls.sort();
    calls
}

/// Runs `context` with every traceparent under `env`; returns the spans and spanprobe's output.
async fn trace(env: &[(&str, &str)]) -> (std::process::Output, Vec<ReceivedSpan>) {
    let s = Scenario::start().await;
    let program = s.c_program("context");
    let traceparents = traceparents();
    let mut command = vec![program.to_str().unwrap()];
    command.extend(traceparents.iter().map(String::as_str));
    let config = s.config(&program, context::functions());
    s.trace(&config, &command).env(env).exits(0).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_traceparent_argument_joins_the_callers_trace() {
    support::needs_root!();
    let (output, spans) = trace(&[]).await;
    let ids = by_id(&spans);
    // The unsampled call (n = 2) sends nothing, nor does its callee.
    let mut expected = vec![("handle_ids".to_owned(), 100), ("lookup".to_owned(), 100)];
    for n in [1, 3, 4, 5, 6, 7] {
        expected.extend([("handle".to_owned(), n), ("lookup".to_owned(), n)]);
    }
    expected.sort();
    assert_eq!(by_call(&spans), expected);
    for lookup in named(&spans, "lookup") {
        let handler = ids[&lookup.span.parent_span_id];
        assert_eq!(handler.int_attr("n"), lookup.int_attr("n"));
        assert_eq!(lookup.span.trace_id, handler.span.trace_id);
        assert_eq!(
            lookup.span.flags & PARENT_IS_REMOTE,
            0x100,
            "a local parent"
        );
    }
    let handler = |n| {
        spans
            .iter()
            .find(|s| s.name().starts_with("handle") && s.int_attr("n") == Some(n))
            .unwrap()
    };
    // Sampled: the caller's trace, as the child of the caller's span, marked remote.
    assert_eq!(hex(&handler(1).span.trace_id), TRACE);
    assert_eq!(hex(&handler(1).span.parent_span_id), PARENT);
    assert_eq!(handler(1).span.flags & PARENT_IS_REMOTE, PARENT_IS_REMOTE);
    // Binary ids, as the program passed them.
    assert_eq!(
        hex(&handler(100).span.trace_id),
        "101112131415161718191a1b1c1d1e1f"
    );
    assert_eq!(hex(&handler(100).span.parent_span_id), "a0a1a2a3a4a5a6a7");
    // Invalid or empty: a new root each, in a trace of its own.
    let mut traces = std::collections::HashSet::new();
    for n in 3..=7 {
        assert!(handler(n).span.parent_span_id.is_empty(), "{n}");
        assert_ne!(hex(&handler(n).span.trace_id), TRACE, "{n}");
        traces.insert(handler(n).span.trace_id.clone());
    }
    assert_eq!(traces.len(), 5);
    assert_stderr_has(&output, "invalid_trace_context=5");
}

#[tokio::test(flavor = "multi_thread")]
async fn samplers_from_the_environment_decide_as_opentelemetry_does() {
    support::needs_root!();
    // parentbased_always_off: the sampled parent's call is kept, new roots are not.
    let (_, spans) = trace(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")]).await;
    assert_eq!(
        by_call(&spans),
        [
            ("handle".to_owned(), 1),
            ("handle_ids".to_owned(), 100),
            ("lookup".to_owned(), 1),
            ("lookup".to_owned(), 100),
        ]
    );
    // traceidratio (not parent-based) at 1: every call is kept, the unsampled parent's too.
    let (_, spans) = trace(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1"),
    ])
    .await;
    assert_eq!(named(&spans, "handle").len(), 7);
    let unsampled_parent = named(&spans, "handle")
        .into_iter()
        .find(|s| s.int_attr("n") == Some(2))
        .unwrap();
    assert_eq!(hex(&unsampled_parent.span.trace_id), TRACE);
    // always_off: nothing.
    let (output, spans) = trace(&[("OTEL_TRACES_SAMPLER", "always_off")]).await;
    assert!(spans.is_empty(), "{spans:?}");
    assert_stderr_has(&output, "events=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_applications_trace_is_joined_by_the_library_it_calls() {
    support::needs_root!();
    // The Python SDK is installed by scripts/setup.sh, which the test command runs first.
    let python = support::repo_root().join("target/otel-python/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    let s = Scenario::start().await;
    // context.c as a shared library: its `handle` takes a traceparent.
    let library = support::compile_c(
        &support::programs().join("context.c"),
        s.path(),
        "libcontext.so",
        &["-fPIC", "-shared"],
    );
    let app = support::programs().join("otel_app.py");
    let endpoint = format!("{}/v1/traces", s.receiver.http_endpoint());
    let (output, spans) = s
        .trace(
            &s.config(&library, context::functions()),
            &[
                python.to_str().unwrap(),
                app.to_str().unwrap(),
                library.to_str().unwrap(),
                &endpoint,
            ],
        )
        .exits(0)
        .await;
    assert!(
        support::stdout(&output).contains("handled 83"),
        "{}",
        support::stdout(&output)
    );
    // The SDK's span, and spanprobe's two, all in one trace: handle the child of the SDK's
    // request span, lookup the child of handle.
    let [request] = named(&spans, "request")[..] else {
        panic!("{spans:#?}")
    };
    let [handle] = named(&spans, "handle")[..] else {
        panic!("{spans:#?}")
    };
    let [lookup] = named(&spans, "lookup")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(request.resource_str("service.name"), Some("python-app"));
    assert_eq!(handle.span.trace_id, request.span.trace_id);
    assert_eq!(handle.span.parent_span_id, request.span.span_id);
    assert_eq!(lookup.span.trace_id, request.span.trace_id);
    assert_eq!(lookup.span.parent_span_id, handle.span.span_id);
    assert_eq!(handle.int_attr("n"), Some(41));
    assert!(request.span.parent_span_id.is_empty());
    assert_ne!(handle.resource_str("service.name"), Some("python-app"));
}
