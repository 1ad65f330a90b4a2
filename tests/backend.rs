//! The OTLP backend, on both transports: headers and gzip, an outage ridden out, a request
//! refused, a backend unavailable then accepting, a slow one, a partial success.

mod support;

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use support::{
    SPANS_WAIT,
    receiver::{Answer, Receiver},
    reported,
    scenario::{Scenario, bench_calls, symbols},
};

/// Asserts that spanprobe's report at exit (in `stderr`) has all `n` spans exported and none
/// dropped, after retrying; `what` names the case.
fn assert_exported_after_retries(stderr: &str, n: u64, what: &str) {
    assert_eq!(reported(stderr, "exported"), n, "{what}: {stderr}");
    assert_eq!(reported(stderr, "dropped"), 0, "{what}: {stderr}");
    assert!(stderr.contains("retrying with backoff"), "{what}: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_outage_is_ridden_out_and_accounted_for() {
    support::needs_root!();
    let s = Scenario::start().await;
    let (grpc_port, http_port) = s.receiver.ports();
    let calls = s.calls("calls-outage", &[]);
    // A short request timeout, so that requests fail while the backend is away and are
    // retried, rather than waiting in the gRPC channel for it to come back.
    let mut config = s.config(&calls, symbols(&["inner"]));
    config["batch"] = json!({ "delay": "10ms" });
    config["exporter"]["otlp"]["timeout"] = json!("200ms");
    let tracer = s.sidecar(&config).await;
    let run = |n: &'static str| {
        let calls = calls.clone();
        async move {
            assert!(
                tokio::process::Command::new(&calls)
                    .args(["bench", n])
                    .output()
                    .await
                    .unwrap()
                    .status
                    .success()
            )
        }
    };
    run("50").await;
    assert_eq!(s.receiver.wait_for_spans(50, SPANS_WAIT).await.len(), 50);
    // The backend goes away while calls go on; the traced program is not held up.
    s.receiver.stop().await;
    run("100").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // It comes back on the same port: what was waiting in the queue is delivered.
    let receiver = Receiver::start_on(grpc_port, http_port).await;
    let arrived = receiver.wait_for_spans(100, Duration::from_secs(20)).await;
    let stderr = tracer.stop().await;
    assert_eq!(arrived.len(), 100, "{stderr}");
    // produced = exported + dropped: nothing was dropped, all 150 were exported.
    assert_exported_after_retries(&stderr, 150, "outage");
    assert!(
        stderr.contains("export failed; retrying with backoff"),
        "{stderr}"
    );
    assert!(stderr.contains("export recovered"), "{stderr}");
}

/// `inner` of `calls`, exported over `protocol` (`grpc` or `http/protobuf`) with a batch delay
/// of `delay`.
fn config_over(s: &Scenario, calls: &Path, protocol: &str, delay: &str) -> Value {
    let mut config = s.config_over(calls, symbols(&["inner"]), protocol);
    config["batch"] = json!({ "delay": delay });
    config
}

/// A long batch delay: every span goes in the one request the final flush sends.
const ONE_REQUEST: &str = "5s";

/// Runs `test` once per transport (`grpc`, then `http/protobuf`), each time against a fresh
/// receiver, with `calls.c` built once as `name`: `test(scenario, calls, protocol)`.
async fn on_each_transport(name: &str, test: impl AsyncFn(&Scenario, &Path, &str)) {
    let (mut s, calls) = Scenario::with_calls(name, &[]).await;
    for protocol in ["grpc", "http/protobuf"] {
        s.receiver = Receiver::start().await;
        test(&s, &calls, protocol).await;
    }
}

/// The transport `protocol` (as `config_over` takes it) arrives on.
fn transport(protocol: &str) -> support::receiver::Protocol {
    match protocol {
        "grpc" => support::receiver::Protocol::Grpc,
        _ => support::receiver::Protocol::Http,
    }
}

/// Headers from the config reach the backend with every request, and `compression: gzip`
/// compresses the requests, on both transports.
#[tokio::test(flavor = "multi_thread")]
async fn headers_and_gzip_reach_the_backend() {
    support::needs_root!();
    on_each_transport("calls-headers", async |s, calls, protocol| {
        let mut config = config_over(s, calls, protocol, ONE_REQUEST);
        let otlp = &mut config["exporter"]["otlp"];
        otlp["compression"] = json!("gzip");
        otlp["headers"] = json!({ "X-Tenant": "t1", "authorization": "Bearer secret" });
        let (stderr, spans) = bench_calls(s, &config, calls, "20").await;
        assert_eq!(spans.len(), 20, "{protocol}: {stderr}");
        assert!(spans.iter().all(|s| s.protocol == transport(protocol)));
        let requests = s.receiver.request_headers();
        assert!(!requests.is_empty());
        for (arrived_on, headers) in requests {
            assert_eq!(arrived_on, transport(protocol));
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            assert_eq!(header("x-tenant"), Some("t1"), "{protocol}: {headers:?}");
            assert_eq!(header("authorization"), Some("Bearer secret"));
            let encoding = match protocol {
                "grpc" => "grpc-encoding",
                _ => "content-encoding",
            };
            assert_eq!(header(encoding), Some("gzip"), "{protocol}: {headers:?}");
        }
        assert!(
            !stderr.contains("secret"),
            "header values are never logged: {stderr}"
        );
    })
    .await;
}

/// A backend that refuses a request as malformed is not asked again (the OTLP
/// specification's rule): the spans are counted as failed at once, with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_is_not_retried_and_its_spans_are_counted() {
    support::needs_root!();
    on_each_transport("calls-refused", async |s, calls, protocol| {
        s.receiver.answer(Answer::Refuse);
        let config = config_over(s, calls, protocol, ONE_REQUEST);
        let (stderr, spans) = bench_calls(s, &config, calls, "40").await;
        assert!(spans.is_empty(), "{protocol}");
        assert_eq!(reported(&stderr, "exported"), 0, "{protocol}: {stderr}");
        assert_eq!(
            reported(&stderr, "export_failed"),
            40,
            "{protocol}: {stderr}"
        );
        let reason = match protocol {
            "grpc" => "gRPC status InvalidArgument: receiver: refused",
            _ => "HTTP status 400 Bad Request: receiver: refused",
        };
        assert!(stderr.contains(reason), "{protocol}: {stderr}");
        assert!(!stderr.contains("retrying"), "{protocol}: {stderr}");
        assert_eq!(
            s.receiver.refused(),
            1,
            "one request, never repeated: {stderr}"
        );
    })
    .await;
}

/// A backend that says it is unavailable (HTTP 503 with Retry-After, gRPC UNAVAILABLE) is
/// asked again until it takes the spans.
#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_backend_is_asked_again_until_it_accepts() {
    support::needs_root!();
    on_each_transport("calls-unavailable", async |s, calls, protocol| {
        let receiver = &s.receiver;
        receiver.answer(Answer::Unavailable);
        let tracer = s.sidecar(&config_over(s, calls, protocol, "10ms")).await;
        let status = tokio::process::Command::new(calls)
            .args(["bench", "25"])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + SPANS_WAIT;
        while receiver.refused() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{protocol}: no retry"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        receiver.answer(Answer::Accept);
        assert_eq!(
            receiver.wait_for_spans(25, SPANS_WAIT).await.len(),
            25,
            "{protocol}"
        );
        let stderr = tracer.stop().await;
        assert_exported_after_retries(&stderr, 25, protocol);
    })
    .await;
}

/// A slow backend does not hold the export up one request at a time: a few requests are in
/// flight at once, and no more than that.
#[tokio::test(flavor = "multi_thread")]
async fn requests_to_a_slow_backend_overlap() {
    support::needs_root!();
    on_each_transport("calls-slow-backend", async |s, calls, protocol| {
        s.receiver.answer_after(Duration::from_millis(300));
        let mut config = config_over(s, calls, protocol, "1ms");
        config["batch"]["batch_size"] = json!(10);
        let (stderr, spans) = bench_calls(s, &config, calls, "200").await;
        assert_eq!(spans.len(), 200, "{protocol}: {stderr}");
        assert!(spans.iter().all(|s| s.protocol == transport(protocol)));
        let most = s.receiver.most_held();
        assert!(
            (2..=4).contains(&most),
            "{protocol}: {most} requests at once"
        );
    })
    .await;
}

/// An OTLP partial success: the request is accepted, but the spans the backend says it
/// rejected are counted as lost, not as exported.
#[tokio::test(flavor = "multi_thread")]
async fn spans_a_backend_rejects_in_an_accepted_request_are_counted() {
    support::needs_root!();
    on_each_transport("calls-partial", async |s, calls, protocol| {
        s.receiver.answer(Answer::PartiallyAccept {
            rejected: 3,
            message: "3 spans over quota".into(),
        });
        let config = config_over(s, calls, protocol, ONE_REQUEST);
        let (stderr, spans) = bench_calls(s, &config, calls, "40").await;
        assert_eq!(spans.len(), 40, "{protocol}");
        assert!(spans.iter().all(|s| s.protocol == transport(protocol)));
        assert_eq!(s.receiver.requests(), 1, "{protocol}: {stderr}");
        assert_eq!(reported(&stderr, "exported"), 37, "{protocol}: {stderr}");
        assert_eq!(
            reported(&stderr, "export_failed"),
            3,
            "{protocol}: {stderr}"
        );
        assert!(
            stderr.contains("3 spans over quota"),
            "{protocol}: {stderr}"
        );
    })
    .await;
}
