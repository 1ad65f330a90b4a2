//! What spanprobe counts and reports: losses when the ring buffer overflows, the Prometheus
//! metrics, the calls still in progress at shutdown.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{
    SPANS_WAIT, reported,
    scenario::{Scenario, bench_calls, symbols},
};

#[tokio::test(flavor = "multi_thread")]
async fn overload_losses_are_counted_to_the_last_call() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls", &[]).await;
    // A 4 KiB ring holds a few dozen events: most of 20000 calls cannot be delivered.
    let functions = json!([{
        "symbol": "inner",
        "args": [{ "index": 0, "name": "x", "type": "i64" }],
        "return": { "type": "i64" },
    }]);
    let mut config = s.config(&calls, functions);
    config["limits"] = json!({ "ring_buffer_size": 4096 });
    let (stderr, spans) = bench_calls(&s, &config, &calls, "20000").await;
    let lost = reported(&stderr, "ring_buffer_full");
    assert!(lost > 0, "{stderr}");
    // The ring wrapped hundreds of times, with records across its end (they are not a divisor
    // of its size): each delivered one reads back whole, and once.
    let mut calls_seen: Vec<(i64, i64)> = spans
        .iter()
        .map(|span| {
            (
                span.int_attr("x").unwrap(),
                span.int_attr("return_value").unwrap(),
            )
        })
        .collect();
    assert!(
        calls_seen
            .iter()
            .all(|&(x, ret)| (0..20000).contains(&x) && ret == 2 * x)
    );
    let received = calls_seen.len();
    calls_seen.sort_unstable();
    calls_seen.dedup();
    assert_eq!(calls_seen.len(), received, "a call delivered twice");
    assert_eq!(
        spans.len() as u64 + lost,
        20000,
        "exported + lost = calls; {stderr}"
    );
    assert_eq!(reported(&stderr, "exported"), spans.len() as u64);
}

/// GETs `/metrics` from `address` and returns the body.
async fn scrape(address: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("metrics listening");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: spanprobe\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("Content-Type: text/plain; version=0.0.4"),
        "{response}"
    );
    response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_in_prometheus_text() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-metrics", &[]).await;
    let port = support::free_port();
    let address = format!("127.0.0.1:{port}");
    let mut config = s.config(&calls, symbols(&["inner"]));
    config["metrics"] = json!({ "listen": address });
    config["batch"] = json!({ "delay": "10ms" });
    let tracer = s.sidecar(&config).await;
    assert!(
        tokio::process::Command::new(&calls)
            .args(["bench", "30"])
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    assert_eq!(s.receiver.wait_for_spans(30, SPANS_WAIT).await.len(), 30);
    let mut body = String::new();
    for _ in 0..50 {
        body = scrape(&address).await;
        if body.contains("spanprobe_spans_exported_total 30\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in [
        "# TYPE spanprobe_events_read_total counter",
        "spanprobe_events_read_total 30",
        "spanprobe_spans_exported_total 30",
        "spanprobe_spans_dropped_total{reason=\"queue_full\"} 0",
        "spanprobe_spans_dropped_total{reason=\"ring_buffer_full\"} 0",
        "spanprobe_probes_attached 2",
        "spanprobe_queue_depth 0",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
    tracer.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_progress_at_shutdown_are_reported() {
    support::needs_root!();
    let (s, calls) = Scenario::with_calls("calls-slow", &[]).await;
    let tracer = s.sidecar(&s.config(&calls, symbols(&["slow"]))).await;
    let mut sleeper = tokio::process::Command::new(&calls)
        .args(["slow", "3000"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stderr = tracer.stop().await;
    assert!(
        stderr.contains("1 calls were still in progress at shutdown and are not exported"),
        "{stderr}"
    );
    let _ = sleeper.kill().await;
}
