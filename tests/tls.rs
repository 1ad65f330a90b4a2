//! OTLP over TLS, to a receiver presenting a self-signed certificate made in the test: trusted
//! through `tls.ca_file` on both transports, accepted unverified with `insecure_skip_verify`,
//! and refused (nothing delivered, the failure reported) when nothing vouches for it.

mod support;

use std::{path::Path, time::Duration};

use serde_json::{Value, json};
use support::{
    receiver::{Protocol, ServerIdentity},
    scenario::{Scenario, Workdir, probe},
};

const WAIT: Duration = Duration::from_secs(20);
/// `demo 2`: six probed calls per loop.
const SPANS: usize = 12;

/// The demo's functions, `two_ints_and_return` with its first argument and return value.
fn demo_probe(demo: &Path) -> Value {
    let functions = json!([
        {
            "symbol": "two_ints_and_return",
            "args": [{ "index": 0, "type": "i32" }],
            "return": { "type": "i32" },
        },
        { "symbol": "two_chars_and_return" },
        { "symbol": "do_nothing_and_return" },
        { "symbol": "outer" },
        { "symbol": "middle" },
        { "symbol": "inner" },
    ]);
    probe(demo, functions)
}

/// Traces `demo 2` exporting to the receiver over `protocol` with the given `tls` settings, if
/// any; returns spanprobe's exit status and stderr.
async fn trace_demo(s: &Scenario, protocol: Protocol, tls: Option<Value>) -> (i32, String) {
    let demo = s.demo();
    let (endpoint, name) = match protocol {
        Protocol::Grpc => (s.receiver.grpc_endpoint(), "grpc"),
        Protocol::Http => (s.receiver.http_endpoint(), "http/protobuf"),
    };
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let mut otlp = json!({ "endpoint": endpoint, "protocol": name });
    if let Some(tls) = tls {
        otlp["tls"] = tls;
    }
    let config = json!({ "exporter": { "otlp": otlp }, "probes": [demo_probe(&demo)] });
    let output = s.run(&config, &[demo.to_str().unwrap(), "2"]).await;
    (output.status.code().unwrap_or(-1), support::stderr(&output))
}

async fn spans_arrive_trusting_the_ca_file(protocol: Protocol) {
    let identity = ServerIdentity::self_signed();
    let s = Scenario::start_tls(&identity).await;
    // Relative to the config file, as binaries are.
    std::fs::create_dir(s.path().join("certs")).unwrap();
    std::fs::write(s.path().join("certs/collector.pem"), &identity.cert_pem).unwrap();
    let tls = json!({ "ca_file": "certs/collector.pem" });
    let (status, stderr) = trace_demo(&s, protocol, Some(tls)).await;
    assert_eq!(status, 0, "stderr: {stderr}");
    let spans = s.receiver.wait_for_spans(SPANS, WAIT).await;
    assert_eq!(spans.len(), SPANS, "stderr: {stderr}");
    assert!(spans.iter().all(|s| s.protocol == protocol));
    let mut values: Vec<_> = spans
        .iter()
        .filter(|s| s.name() == "two_ints_and_return")
        .map(|s| (s.int_attr("arg0"), s.int_attr("return_value")))
        .collect();
    values.sort();
    assert_eq!(values, [(Some(0), Some(0)), (Some(1), Some(11))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_over_tls_with_a_ca_file() {
    support::needs_root!();
    spans_arrive_trusting_the_ca_file(Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_over_tls_with_a_ca_file() {
    support::needs_root!();
    spans_arrive_trusting_the_ca_file(Protocol::Http).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_skip_verify_accepts_any_certificate() {
    support::needs_root!();
    let s = Scenario::start_tls(&ServerIdentity::self_signed()).await;
    let tls = json!({ "insecure_skip_verify": true });
    let (status, stderr) = trace_demo(&s, Protocol::Grpc, Some(tls)).await;
    assert_eq!(status, 0, "stderr: {stderr}");
    assert_eq!(s.receiver.wait_for_spans(SPANS, WAIT).await.len(), SPANS);
    assert!(
        stderr.contains("certificate is not checked"),
        "the user is warned: {stderr}"
    );
}

/// Without the CA the system roots do not vouch for the receiver: the handshake fails, nothing
/// is delivered, and the loss is reported rather than silent.
#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_certificate_is_refused_and_reported() {
    support::needs_root!();
    let s = Scenario::start_tls(&ServerIdentity::self_signed()).await;
    let (status, stderr) = trace_demo(&s, Protocol::Http, None).await;
    assert_eq!(status, 0, "the traced command's status: {stderr}");
    assert!(s.receiver.spans().is_empty());
    assert!(stderr.contains("export failed"), "{stderr}");
    assert!(
        stderr.contains("certificate rejected: invalid peer certificate: UnknownIssuer"),
        "the reason is named: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{SPANS} calls were not exported")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_ca_file_is_named_before_anything_is_attached() {
    let dir = Workdir::new();
    let demo = dir.demo();
    let otlp = json!({
        "endpoint": "https://localhost:4317",
        "protocol": "grpc",
        "tls": { "ca_file": "missing.pem" },
    });
    let config = dir.write(&json!({ "exporter": { "otlp": otlp }, "probes": [demo_probe(&demo)] }));
    for args in [
        vec!["check", "--config", config.to_str().unwrap()],
        vec![
            "run",
            "--config",
            config.to_str().unwrap(),
            "--",
            demo.to_str().unwrap(),
            "1",
        ],
    ] {
        let output = support::spanprobe_with(&args).await;
        let stderr = support::stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "exporter.otlp.tls.ca_file: cannot read `{}` as PEM certificates",
                dir.path().join("missing.pem").display()
            )),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("attached"),
            "nothing was attached: {stderr}"
        );
    }
}
