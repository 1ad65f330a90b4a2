//! Every capture type, end to end over OTLP: strings (cold pages, truncated, null), byte
//! buffers, pointers, arguments past the sixth (from the stack), u64, bool, char, error_when
//! and static attributes, on examples/captures.

mod support;

use std::time::Duration;

use support::scenario::{Scenario, assert_exit, named};

#[tokio::test(flavor = "multi_thread")]
async fn every_capture_type_arrives_with_its_value() {
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
