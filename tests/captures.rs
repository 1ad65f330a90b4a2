//! Every capture type, end to end over OTLP: strings (cold pages, truncated, null), byte
//! buffers, pointers, arguments past the sixth (from the stack), u64, bool, char, error_when
//! and static attributes, on examples/captures; output buffers read at return, on a fixture
//! and on OpenSSL's plaintext (examples/sslsniff).

mod support;

use std::time::Duration;

use serde_json::json;
use support::scenario::{Scenario, assert_exit, named};

#[tokio::test(flavor = "multi_thread")]
async fn every_capture_type_arrives_with_its_value() {
    support::needs_root!();
    let s = Scenario::start().await;
    let examples = support::repo_root().join("examples/captures");
    let binary = support::compile_c(&examples.join("captures.c"), s.path(), "captures", &[]);
    // The bundled config, as its text, pointed at this build and at the receiver.
    let bundled = std::fs::read_to_string(examples.join("captures.yaml")).unwrap();
    let config = bundled.replace(
        "service_name: captures\n",
        &format!(
            "service_name: captures\nexporter:\n  otlp: {{ endpoint: \"{}\" }}\n",
            s.receiver.grpc_endpoint()
        ),
    );
    let output = support::run(&s.write_yaml(&config), &[binary.to_str().unwrap()]).await;
    assert_exit(&output, 0);

    let spans = s.receiver.wait_for_spans(7, Duration::from_secs(10)).await;
    assert_eq!(spans.len(), 7);

    let opens = named(&spans, "open_path");
    assert_eq!(opens.len(), 3);
    // In call order: a string on a page the program had not touched yet, an error return, and
    // a string longer than max_len.
    let mut opens = opens.clone();
    opens.sort_by_key(|s| s.span.start_time_unix_nano);
    assert_eq!(opens[0].str_attr("path"), Some("/etc/hosts"));
    assert_eq!(opens[0].int_attr("flags"), Some(1));
    assert_eq!(opens[0].int_attr("fd"), Some(4));
    assert_eq!(opens[0].str_attr("component"), Some("files"));
    assert_eq!(
        opens[0].span.status.as_ref().map(|s| s.code),
        Some(0),
        "unset"
    );
    assert_eq!(opens[0].bool_attr("path.truncated"), None);
    assert_eq!(opens[1].str_attr("path"), Some("/missing/file"));
    assert_eq!(opens[1].int_attr("fd"), Some(-2));
    let status = opens[1].span.status.as_ref().expect("status");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert_eq!(status.message, "fd = -2 (error_when < 0)");
    assert_eq!(opens[2].str_attr("path"), Some("a-rather-long-pa"));
    assert_eq!(opens[2].bool_attr("path.truncated"), Some(true));

    let sum = named(&spans, "checksum")[0];
    assert_eq!(sum.str_attr("key"), Some("deadbeef"));
    assert_eq!(sum.int_attr("len"), Some(4));
    let expected = [0xdeu32, 0xad, 0xbe, 0xef]
        .iter()
        .fold(0u32, |s, b| s.wrapping_mul(31).wrapping_add(*b));
    assert_eq!(sum.int_attr("sum"), Some(i64::from(expected)));

    let nine = named(&spans, "nine_args")[0];
    assert_eq!(nine.int_attr("arg0"), Some(1));
    assert_eq!(nine.int_attr("arg5"), Some(6));
    // Past i64::MAX: the decimal string.
    assert_eq!(nine.str_attr("big"), Some("18364758544493064720"));
    assert_eq!(nine.bool_attr("flag"), Some(true));
    assert_eq!(nine.str_attr("letter"), Some("z"));
    assert_eq!(
        nine.int_attr("return_value"),
        Some(1 + 2 + 3 + 4 + 5 + 6 + 0x10 + 1 + 122)
    );

    let pointer = named(&spans, "pass_pointer")[0];
    assert_eq!(pointer.str_attr("p"), Some("0x1234"));
    assert_eq!(pointer.str_attr("return_value"), Some("0x1234"));
    assert_eq!(pointer.span.status.as_ref().map(|s| s.code), Some(0));

    let null = named(&spans, "name_length")[0];
    assert_eq!(null.str_attr("name"), Some("(null)"));
    assert_eq!(null.int_attr("return_value"), Some(-1));
}

/// Spans of `name` in call order.
fn in_order<'a>(
    spans: &'a [support::receiver::ReceivedSpan],
    name: &str,
) -> Vec<&'a support::receiver::ReceivedSpan> {
    let mut calls = named(spans, name);
    calls.sort_by_key(|s| s.span.start_time_unix_nano);
    calls
}

#[tokio::test(flavor = "multi_thread")]
async fn buffers_the_call_fills_are_read_when_it_returns() {
    support::needs_root!();
    let s = Scenario::start().await;
    let outputs = s.c_program("outputs");
    let data = |index: u8, extra: serde_json::Value| {
        let mut arg = json!({ "index": index, "name": "data", "type": "str", "max_len": 32,
                              "at": "return" });
        arg.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!([arg])
    };
    // Return types from DWARF: `ssize_t` and `int`, which tell the counts' widths and signs.
    let functions = json!([
        { "symbol": "fill", "args": data(1, json!({ "len_arg": "return" })) },
        { "symbol": "fill_ex", "args": data(0, json!({ "len_arg": "*2" })) },
        { "symbol": "next_line",
          "args": data(0, json!({ "len_arg": "return", "offsets": [0, 0] })) },
        { "symbol": "fill_and_escape",
          "args": [{ "index": 0, "name": "data", "type": "bytes", "len": 10, "at": "return" }] },
    ]);
    let (_, spans) = s
        .trace(&s.config(&outputs, functions), &[outputs.to_str().unwrap()])
        .exits(0)
        .await;

    let fills = in_order(&spans, "fill");
    assert_eq!(fills.len(), 2);
    // Not the stale bytes the buffer held at entry ("sss..."), nor anything past the count.
    assert_eq!(fills[0].str_attr("data"), Some("filled by the call"));
    // Returned -1: nothing was written, and nothing is shown.
    assert_eq!(fills[1].attr("data"), None);
    let fill_ex = in_order(&spans, "fill_ex");
    assert_eq!(
        fill_ex[0].str_attr("data"),
        Some("counted behind a pointer")
    );
    assert_eq!(fill_ex[1].attr("data"), None, "returned 0: failed");
    // The chain is followed at return: `*line` was set by the call.
    let line = named(&spans, "next_line")[0];
    assert_eq!(line.str_attr("data"), Some("a line of its own"));
    // Left by a longjmp: it never returned, and what it wrote is not read.
    let escaped = named(&spans, "fill_and_escape")[0];
    assert_eq!(escaped.attr("data"), None);
    assert_eq!(escaped.span.status.as_ref().map(|s| s.code), Some(2));
}

#[tokio::test]
async fn a_count_from_a_return_of_unknown_type_is_refused() {
    let s = Scenario::start().await;
    // Without DWARF the width of the return value, whose upper half an `int` leaves undefined,
    // is unknown.
    let outputs = support::compile_c(
        &support::programs().join("outputs.c"),
        s.path(),
        "outputs",
        &["-g0"],
    );
    let functions = json!([{ "symbol": "fill", "args": [
        { "index": 1, "type": "str", "at": "return", "len_arg": "return" }] }]);
    let errors = s.check(&s.config(&outputs, functions.clone()), 2).await;
    assert!(
        errors.contains(
            "probes[0].functions[0].args[0].len_arg: `fill`: `len_arg: return` reads the return \
             value, whose type no DWARF gives: give it as `return: { type: i32 }`"
        ),
        "{errors}"
    );
    let mut typed = functions;
    typed[0]["return"] = json!({ "type": "i64" });
    s.check(&s.config(&outputs, typed), 0).await;
}

/// A real TLS exchange on loopback, `curl` against `openssl s_server`, traced with the bundled
/// example: the request as curl handed it to OpenSSL, and the response as OpenSSL decrypted it.
#[tokio::test(flavor = "multi_thread")]
async fn sslsniff_example_shows_a_real_exchange_in_plaintext() {
    support::needs_root!();
    let s = Scenario::start().await;
    let dir = s.path();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    std::fs::write(dir.join("hello.txt"), "hello through TLS\n").unwrap();
    let bundled =
        std::fs::read_to_string(support::repo_root().join("examples/sslsniff/sslsniff.yaml"))
            .unwrap();
    let config = format!(
        "{bundled}exporter:\n  otlp: {{ endpoint: \"{}\" }}\n",
        s.receiver.grpc_endpoint()
    );
    let port = support::free_port();
    // The server serves one connection (`-naccept 1`) and exits; curl retries until it listens.
    let script = format!(
        "openssl s_server -quiet -accept 127.0.0.1:{port} -cert cert.pem -key key.pem -WWW \
         -naccept 1 >/dev/null 2>&1 & \
         for i in $(seq 100); do \
           curl -sk https://127.0.0.1:{port}/hello.txt && break; sleep 0.1; \
         done; wait"
    );
    let output = tokio::process::Command::new(support::spanprobe())
        .args(["run", "--config"])
        .arg(s.write_yaml(&config))
        .args(["--", "sh", "-c", &script])
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(support::stdout(&output), "hello through TLS\n");
    let spans = s.receiver.spans();
    let request = format!("GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: curl/");
    let writes = named(&spans, "SSL_write");
    assert!(
        writes.iter().any(|w| w
            .str_attr("tls.plaintext")
            .is_some_and(|text| text.starts_with(&request))),
        "{writes:#?}"
    );
    let response = "HTTP/1.0 200 ok\r\nContent-type: text/plain\r\n\r\nhello through TLS\n";
    let read: String = in_order(&spans, "SSL_read")
        .iter()
        .filter_map(|r| r.str_attr("tls.plaintext"))
        .collect();
    assert_eq!(read, response);
    // Every read that returned bytes has exactly that many.
    for r in named(&spans, "SSL_read") {
        let bytes = r.int_attr("tls.bytes").unwrap();
        let text = r.str_attr("tls.plaintext");
        assert_eq!(text.map_or(0, |t| t.len() as i64), bytes.max(0), "{r:#?}");
    }
}
