//! Where arguments are read and how far: the System V slots `init` places them in, from
//! DWARF (C++'s `this` the first), Rust slices as one value, a buffer counted by another
//! argument.

mod support;

use std::process::Output;

use serde_json::json;
use support::{
    receiver::ReceivedSpan,
    scenario::{Scenario, assert_exit, named},
};

/// Runs `command` under the config `init` wrote (`text`, kept as text: it is `init`'s output
/// that is tried), exporting to the scenario's receiver.
async fn trace_init_config(
    s: &Scenario,
    text: &str,
    command: &[&str],
) -> (Output, Vec<ReceivedSpan>) {
    let exporter = format!(
        "exporter:\n  otlp: {{ endpoint: \"{}\" }}\nprobes:",
        s.receiver.grpc_endpoint()
    );
    let config = s.write_yaml(&text.replacen("probes:", &exporter, 1));
    let output = support::run(&config, command).await;
    assert_exit(&output, 0);
    (output, s.receiver.spans())
}

/// `init` places each argument where the System V convention puts it, from DWARF: no integer
/// slot for a double, two for a struct of two integers (offered as its members), none for a
/// large struct by value, the first for a large return value's hidden pointer. The spans of
/// `init`'s config carry exactly what the program received.
#[tokio::test(flavor = "multi_thread")]
async fn init_places_arguments_by_the_calling_convention() {
    support::needs_root!();
    let s = Scenario::start().await;
    let abi = support::compile_c(&support::programs().join("abi.c"), s.path(), "abi", &[]);
    let init =
        support::spanprobe_with(&["init", abi.to_str().unwrap(), "after_*", "make_big"]).await;
    assert_eq!(init.status.code(), Some(0), "{}", support::stderr(&init));
    let text = support::stdout(&init);
    for expected in [
        "- { index: 0, name: n, type: i64 }  # long",
        "- { index: 1, name: s, type: str }  # const char *",
        "# d (double): in an XMM register, which uprobes do not capture",
        "- { index: 0, name: p.a, type: i64 }  # struct pair, .a",
        "- { index: 1, name: p.b, type: str }  # struct pair, .b",
        "- { index: 2, name: n, type: i64 }  # long",
        "# b (struct big): copied onto the stack (4 eightbytes from index 6): not captured",
        "- { index: 1, name: n, type: i64 }  # long",
        "# RDI holds the hidden pointer to the return value's space",
        "return: { type: ptr }  # struct big, returned in memory: RAX holds its address",
        "# m (struct mixed): one integer and one XMM register: not captured",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }

    let (output, spans) = trace_init_config(&s, &text, &[abi.to_str().unwrap()]).await;
    let printed = support::stdout(&output);
    let span = |name: &str| {
        let found = named(&spans, name);
        assert_eq!(found.len(), 1, "{name}");
        found[0]
    };
    assert!(printed.contains("after_double n=7 s=seven"), "{printed}");
    assert_eq!(span("after_double").int_attr("n"), Some(7));
    assert_eq!(span("after_double").str_attr("s"), Some("seven"));
    assert!(
        printed.contains("after_pair p.a=41 p.b=pair n=8"),
        "{printed}"
    );
    assert_eq!(span("after_pair").int_attr("p.a"), Some(41));
    assert_eq!(span("after_pair").str_attr("p.b"), Some("pair"));
    assert_eq!(span("after_pair").int_attr("n"), Some(8));
    assert_eq!(span("make_big").int_attr("n"), Some(9));
    assert_eq!(span("after_big").int_attr("n"), Some(10));
    assert_eq!(span("after_mixed").int_attr("n"), Some(11));
}

/// A C++ method's `this` is its first slot; `init` writes it so, from DWARF's artificial first
/// parameter, and the method's own arguments follow.
#[tokio::test(flavor = "multi_thread")]
async fn init_counts_cpp_this_as_the_first_slot() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.shapes();
    let init = support::spanprobe_with(&["init", binary.to_str().unwrap(), "*scaled"]).await;
    let text = support::stdout(&init);
    assert!(
        text.contains("- { index: 0, name: this, type: ptr }")
            && text.contains("- { index: 1, name: k, type: i64 }"),
        "{text}"
    );
    let (_, spans) = trace_init_config(&s, &text, &[binary.to_str().unwrap()]).await;
    let scaled = named(&spans, "shapes::Square::scaled");
    assert_eq!(scaled.len(), 1);
    assert_eq!(scaled[0].int_attr("k"), Some(7));
    assert_eq!(scaled[0].int_attr("return_value"), Some(35));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rust_str_and_byte_slice_are_each_one_value_counted_by_their_length() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.rusty(true);
    // `init` offers each slice as one value whose length is its second slot.
    let init = support::spanprobe_with(&["init", binary.to_str().unwrap(), "*label*"]).await;
    let text = support::stdout(&init);
    for line in [
        "          - { index: 0, name: name, type: str, len_arg: 1 }  # struct &str\n",
        "          - { index: 2, name: key, type: bytes, len_arg: 3 }  # struct &[u8]\n",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let functions = json!([{
        "symbol": "rusty::label",
        "args": [
            { "index": 0, "name": "name", "type": "str", "len_arg": 1, "max_len": 16 },
            { "index": 2, "name": "key", "type": "bytes", "len_arg": 3, "len": 2 },
        ],
        "return": { "type": "u64" },
    }]);
    let (output, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    assert!(support::stdout(&output).contains("lengths 14 100"));
    let mut calls: Vec<_> = spans
        .iter()
        .map(|span| {
            (
                span.int_attr("return_value").unwrap(),
                span.str_attr("name").unwrap().to_owned(),
                span.bool_attr("name.truncated"),
                span.str_attr("key").unwrap().to_owned(),
                span.bool_attr("key.truncated"),
            )
        })
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            // The slice's 11 bytes, not the rest of the literal it points into.
            (14, "temperature".into(), None, "0102".into(), Some(true)),
            (100, "x".repeat(16), Some(true), String::new(), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_buffer_counted_by_another_argument_is_read_to_its_count() {
    support::needs_root!();
    // libc's write(fd, buf, count), called by a program no one here wrote.
    let s = Scenario::start().await;
    let functions = json!([{
        "symbol": "write",
        "args": [
            { "index": 0, "name": "fd", "type": "i32" },
            { "index": 1, "name": "text", "type": "str", "len_arg": 2 },
        ],
    }]);
    let config = s.config("libc.so.6", functions);
    let (output, spans) = s
        .trace(&config, &["/bin/echo", "hello, world"])
        .exits(0)
        .await;
    assert_eq!(support::stdout(&output), "hello, world\n");
    let writes: Vec<_> = named(&spans, "write")
        .into_iter()
        .filter(|span| span.int_attr("fd") == Some(1))
        .collect();
    assert_eq!(writes.len(), 1, "{spans:?}");
    assert_eq!(writes[0].str_attr("text"), Some("hello, world\n"));
    assert_eq!(writes[0].bool_attr("text.truncated"), None);
}
