//! Golden tests of the messages a user sees for mistakes in a config.

use std::path::Path;

use spanprobe_config::{ConfigError, ValueType, parse};

fn no_env(_: &str) -> Option<String> {
    None
}

/// The error text for `yaml`, which must be rejected.
fn error(yaml: &str) -> String {
    match parse(Path::new("app.yaml"), yaml, &no_env) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error @ ConfigError::Invalid { .. }) => error.to_string(),
        Err(other) => panic!("unexpected error kind: {other}"),
    }
}

/// The value types an unknown `type:` is told to choose from: every one of the type table, in
/// its order, so that a new type is expected without a test to edit.
fn type_names() -> String {
    ValueType::ALL.map(|(_, name)| name).join(", ")
}

const HEAD: &str = "probes:\n  - binary: demo\n    functions:\n";

#[test]
fn malformed_yaml() {
    assert_eq!(
        error("probes:\n  - binary: demo\n    functions: [\n"),
        "app.yaml:3:16: probes[0].functions: unclosed bracket '['"
    );
    // Without a document there are no schema errors to look for: the syntax error is all.
    assert_eq!(
        error(
            "probes: [\n  { binary: demo, functions: [{ symbol: f }] }\n  \
             { binary: [x], functoins: [] }\n]\nlimit: {}\n"
        ),
        "app.yaml:3:3: probes: while parsing a flow sequence, expected ',' or ']'"
    );
}

#[test]
fn unknown_keys_suggest_the_closest() {
    assert_eq!(
        error("probes:\n  - binary: demo\n    functoins: []\n"),
        "app.yaml:2:5: probes[0].functions: at least one function, `usdt` probe or handoff is needed\n\
         app.yaml:3:5: probes[0].functoins: unknown field `functoins`, expected one of binary, \
         executable, library, pid, container, functions, usdt, handoffs, follow_goroutines (did you mean `functions`?)"
    );
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        retrun: {{ type: i32 }}\n"
        )),
        "app.yaml:5:9: probes[0].functions[0].retrun: unknown field `retrun`, expected one of \
         symbol, exclude, offset, address, span_name, args, return, attributes, stack, \
         sample_rate, min_duration, keep, trace_context, when (did you mean `return`?)"
    );
}

#[test]
fn unknown_types_suggest_the_closest() {
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        args: [{{ index: 0, type: i33 }}]\n"
        )),
        format!(
            "app.yaml:5:34: probes[0].functions[0].args[0].type: unknown type `i33` (did you \
             mean `i32`?); expected one of {}",
            type_names()
        )
    );
}

#[test]
fn floats_are_refused_with_the_reason() {
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        return: {{ type: f64 }}\n"
        )),
        "app.yaml:5:25: probes[0].functions[0].return.type: `f64` cannot be captured: \
         floating-point arguments and return values are passed in XMM registers, which uprobes \
         do not see"
    );
}

#[test]
fn wrong_value_types() {
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        args: [{{ index: 300, type: i32 }}]\n"
        )),
        "app.yaml:5:25: probes[0].functions[0].args[0].index: invalid u8"
    );
    assert_eq!(
        error("probes: 3\n"),
        "app.yaml:1:9: probes: expected sequence start"
    );
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        min_duration: soon\n"
        )),
        "app.yaml:5:23: probes[0].functions[0].min_duration: `soon` is not a duration (expected \
         number at 0); write e.g. `50us`, `10ms`, `5s`"
    );
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        return: {{ type: i32, error_when: '<> 0' }}\n"
        )),
        "app.yaml:5:42: probes[0].functions[0].return.error_when: `<>` in `<> 0` is not a \
         comparison; write one of <, <=, >, >=, ==, != and a number, e.g. `< 0`"
    );
}

#[test]
fn missing_keys() {
    assert_eq!(
        error("probes:\n  - binary: demo\n"),
        "app.yaml:2:5: probes[0].functions: at least one function, `usdt` probe or handoff is needed"
    );
    assert_eq!(error(""), "app.yaml:1:1: .: unexpected end of input");
}

/// `probes: []` is a mistake of its own, reported along.
#[test]
fn exporters() {
    assert_eq!(
        error("exporter: { stdout: {}, otlp: {} }\nprobes: []\n"),
        "app.yaml: probes: at least one probe target is needed\n\
         app.yaml:1:11: exporter: name one exporter, not both `stdout` and `otlp`"
    );
    assert_eq!(
        error("exporter: { otlp: { protocol: http/json } }\nprobes: []\n"),
        "app.yaml: probes: at least one probe target is needed\n\
         app.yaml:1:31: exporter.otlp.protocol: unknown variant `http/json`, expected one of grpc, \
         http/protobuf (did you mean `http/protobuf`?)"
    );
}

#[test]
fn tls_mistakes() {
    const PROBES: &str = "probes: [{ binary: demo, functions: [{ symbol: f }] }]\n";
    assert_eq!(
        error(&format!(
            "exporter: {{ otlp: {{ endpoint: 'http://c:4317', tls: {{ insecure_skip_verify: true }} }} }}\n{PROBES}"
        )),
        "app.yaml:1:53: exporter.otlp.tls: the endpoint `http://c:4317` is not https://, so TLS \
         settings would not be used"
    );
    assert_eq!(
        error(&format!(
            "exporter: {{ otlp: {{ endpoint: 'https://c:4317', tls: {{ ca_file: ca.pem, insecure_skip_verify: true }} }} }}\n{PROBES}"
        )),
        "app.yaml:1:65: exporter.otlp.tls.ca_file: is unused when insecure_skip_verify is true; \
         set one or the other"
    );
    assert_eq!(
        error(&format!(
            "exporter: {{ otlp: {{ endpoint: 'https://c:4317', tls: {{ ca: ca.pem }} }} }}\n{PROBES}"
        )),
        "app.yaml:1:56: exporter.otlp.tls.ca: unknown field `ca`, expected one of ca_file, \
         insecure_skip_verify (did you mean `ca_file`?)"
    );
}

/// An endpoint from the environment is the variable's problem; one in the file, and `tls`,
/// are reported at their place; a `ca_file` that cannot be read is reported with them.
#[test]
fn endpoint_and_tls_problems_say_where_the_value_came_from() {
    const PROBES: &str = "probes: [{ binary: demo, functions: [{ symbol: f }] }]\n";
    let env =
        |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "collector:4317".to_owned());
    let yaml = format!("exporter: {{ otlp: {{ endpoint: 'https://c:4317' }} }}\n{PROBES}");
    let Err(error) = parse(Path::new("app.yaml"), &yaml, &env) else {
        panic!("accepted")
    };
    assert_eq!(
        error.to_string(),
        "app.yaml: $OTEL_EXPORTER_OTLP_ENDPOINT: `collector:4317` is not an http:// or https:// URL"
    );
    let env =
        |name: &str| (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://env:4317".to_owned());
    let yaml = format!(
        "exporter: {{ otlp: {{ endpoint: 'https://c:4317', tls: {{ insecure_skip_verify: true }} }} }}\n{PROBES}"
    );
    let Err(error) = parse(Path::new("app.yaml"), &yaml, &env) else {
        panic!("accepted")
    };
    assert_eq!(
        error.to_string(),
        "app.yaml:1:54: exporter.otlp.tls: the endpoint `http://env:4317` (from \
         $OTEL_EXPORTER_OTLP_ENDPOINT) is not https://, so TLS settings would not be used"
    );

    let dir = std::env::temp_dir().join(format!("spanprobe-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("app.yaml");
    std::fs::write(
        &config,
        format!(
            "exporter:\n  otlp:\n    endpoint: 'http:/c:4317'\n    tls: {{ ca_file: missing.pem }}\n{PROBES}"
        ),
    )
    .unwrap();
    let error = spanprobe_config::load(&config).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let file = config.display();
    let missing = dir.join("missing.pem");
    assert_eq!(
        error,
        format!(
            "{file}:3:15: exporter.otlp.endpoint: `http:/c:4317` is not an http:// or https:// URL\n\
             {file}:4:10: exporter.otlp.tls: the endpoint `http:/c:4317` is not https://, so TLS \
             settings would not be used\n\
             {file}:4:21: exporter.otlp.tls.ca_file: cannot read `{}` as PEM certificates: No \
             such file or directory (os error 2)",
            missing.display()
        )
    );
}

/// Semantic problems are all reported together, each with its position.
#[test]
fn every_semantic_problem_at_once() {
    let yaml = "\
exporter: { otlp: { endpoint: 'collector:4317' } }
batch: { queue_size: 10, batch_size: 20 }
probes:
  - binary: demo
    pid: 0
    functions:
      - symbol: f
        args:
          - { index: 16, type: i32 }
          - { index: 1, name: x, type: str, max_len: 513 }
          - { index: 1, name: x, type: bytes }
          - { index: 2, type: i32, len: 4 }
          - { index: 3, type: i32, len_arg: 2 }
          - { index: 4, type: str, len_arg: 4 }
          - { index: 5, type: bytes, len_arg: 16 }
        return: { name: x, type: str }
      - symbol: f
      - offset: 0x10
        symbol: g
      - span_name: nothing
      - symbol: h
        stack: true
        sample_rate: 1.5
        min_duration: 10us
  - binary: other
    functions: []
limits: { max_depth: 40 }
";
    let expected = [
        "app.yaml: limits.max_depth: 40 is out of range: 1..=32",
        "app.yaml: batch.batch_size: 20 is larger than batch.queue_size (10)",
        "app.yaml:1:31: exporter.otlp.endpoint: `collector:4317` is not an http:// or https:// URL",
        "app.yaml:5:10: probes[0].pid: must be a process id, not 0",
        "app.yaml:9:13: probes[0].functions[0].args[0].index: 16 is out of range: arguments \
         0..=15 can be captured (0 to 5 from registers, 6 and up from the caller's stack)",
        "app.yaml:10:13: probes[0].functions[0].args[1].max_len: 513 is out of range: 1..=512",
        "app.yaml:11:13: probes[0].functions[0].args[2].name: attribute `x` is used twice in this function",
        "app.yaml:11:13: probes[0].functions[0].args[2].len: `bytes` needs `len`, the number of bytes to read, or `len_arg`, the argument that counts them",
        "app.yaml:12:13: probes[0].functions[0].args[3].len: only `bytes` arguments take `len`",
        "app.yaml:13:13: probes[0].functions[0].args[4].len_arg: only `str` and `bytes` arguments take `len_arg`",
        "app.yaml:14:13: probes[0].functions[0].args[5].len_arg: 4 is this argument's own index; name the argument that counts its bytes",
        "app.yaml:15:13: probes[0].functions[0].args[6].len_arg: 16 is out of range: arguments 0..=15 can be read",
        "app.yaml:16:17: probes[0].functions[0].return.type: a `str` return value cannot be captured yet; capture it as `ptr`",
        "app.yaml:16:17: probes[0].functions[0].return.name: attribute `x` is also an argument's name",
        "app.yaml:17:17: probes[0].functions[1]: this function is listed twice for this binary",
        "app.yaml:18:9: probes[0].functions[2]: give only one of `symbol`, `offset` or `address`",
        "app.yaml:20:9: probes[0].functions[3]: give one of `symbol`, `offset` or `address`",
        "app.yaml:23:22: probes[0].functions[4].sample_rate: 1.5 is not between 0 and 1",
        "app.yaml:25:5: probes[1].functions: at least one function, `usdt` probe or handoff is needed",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

#[test]
fn unset_environment_variables() {
    assert_eq!(
        error(
            "exporter: { otlp: { headers: { authorization: 'Bearer ${TOKEN}' } } }\nprobes: [{ binary: demo, functions: [{ symbol: f }] }]\n"
        ),
        "app.yaml:1:47: exporter.otlp.headers.authorization: environment variable `TOKEN` is not set"
    );
}

/// A value from `${VAR}` that is not what its field takes is reported where the reference
/// is written, with the other problems of the file.
#[test]
fn expanded_values_of_the_wrong_type() {
    let env = |name: &str| (name == "PID").then(|| "abc".to_owned());
    let yaml = "probes:\n  - binary: demo\n    pid: ${PID}\n    functions:\n      - symbol: f\n        \
                args: [{ index: 0, type: str, max_len: '${LEN}' }]\n        stack: maybe\n";
    let Err(error) = parse(Path::new("app.yaml"), yaml, &env) else {
        panic!("accepted")
    };
    assert_eq!(
        error.to_string(),
        "app.yaml:3:10: probes[0].pid: invalid u32\n\
         app.yaml:6:48: probes[0].functions[0].args[0].max_len: environment variable `LEN` is not \
         set\n\
         app.yaml:7:16: probes[0].functions[0].stack: invalid type: string \"maybe\", expected `true`, `false`, or `{ unwind: fp | dwarf | auto, bytes: N }`"
    );
}

/// Schema errors do not stop at the first: each is reported with its place, in document order.
#[test]
fn every_schema_error_at_once() {
    let yaml = "\
probes:
  - binary: demo
    functions:
      - symbol: f
        retrun: { type: i32 }
      - symbol: g
      - symbol: h
        args:
          - { index: 0, type: i32 }
          - { index: 1, type: i33 }
  - binary: other
    pid: -1
    functions:
      - symbol: k
        stack: maybe
exporter: { otlp: { compression: zip } }
limit: { max_depth: 8 }
";
    let expected = [
        "app.yaml:5:9: probes[0].functions[0].retrun: unknown field `retrun`, expected one of \
         symbol, exclude, offset, address, span_name, args, return, attributes, stack, sample_rate, \
         min_duration, keep, trace_context, when (did you mean `return`?)",
        &format!(
            "app.yaml:10:31: probes[0].functions[2].args[1].type: unknown type `i33` (did you \
             mean `i32`?); expected one of {}",
            type_names()
        ),
        "app.yaml:12:10: probes[1].pid: invalid u32",
        "app.yaml:15:16: probes[1].functions[0].stack: invalid type: string \"maybe\", expected `true`, `false`, or `{ unwind: fp | dwarf | auto, bytes: N }`",
        "app.yaml:16:34: exporter.otlp.compression: unknown variant `zip`, expected one of none, \
         gzip (did you mean `gzip`?)",
        "app.yaml:17:1: limit: unknown field `limit`, expected one of service_name, resource, \
         exporter, batch, limits, metrics, probes (did you mean `limits`?)",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

/// The semantic problems of the parts that parse come with the schema errors.
#[test]
fn schema_and_semantic_problems_together() {
    let yaml = "\
probes:
  - binary: demo
    functions:
      - symbol: f
        args: [{ index: 0, type: i33 }]
      - symbol: g
        sample_rate: 1.5
      - symbol: g
";
    let expected = [
        &format!(
            "app.yaml:5:34: probes[0].functions[0].args[0].type: unknown type `i33` (did you \
             mean `i32`?); expected one of {}",
            type_names()
        ),
        "app.yaml:7:22: probes[0].functions[1].sample_rate: 1.5 is not between 0 and 1",
        "app.yaml:8:17: probes[0].functions[2]: this function is listed twice for this binary",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

/// A value left out for its error leaves no "missing field" behind, nor semantic problems
/// about what it took away, and the elements after it keep their index.
#[test]
fn no_follow_on_errors() {
    let yaml = "\
probes:
  - binary: [demo]
    functions: [{ symbol: f }]
  - binary: other
    functions:
      - 42
  - binary: third
    functions:
      - symbol: f
        args:
          - { index: 0, type: i32 }
          - { index: 1, type: string }
          - { index: 2, name: arg0, type: i32 }
        return: { type: i32, error_when: 0 }
";
    let expected = [
        "app.yaml:2:13: probes[0].binary: expected string scalar",
        "app.yaml:6:9: probes[1].functions[0]: expected mapping start",
        &format!(
            "app.yaml:12:31: probes[2].functions[0].args[1].type: unknown type `string` (did you \
             mean `str`?); expected one of {}",
            type_names()
        ),
        "app.yaml:13:13: probes[2].functions[0].args[2].name: attribute `arg0` is used twice in \
         this function",
        "app.yaml:14:42: probes[2].functions[0].return.error_when: `0` is not a comparison; write \
         one of <, <=, >, >=, ==, != and a number, e.g. `< 0`",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

#[test]
fn trace_context_mistakes() {
    let yaml = "\
probes:
  - binary: demo
    functions:
      - symbol: f
        trace_context: { format: traceparent }
      - symbol: g
        trace_context: { format: ids, trace_id_arg: 0, arg: 1 }
      - symbol: h
        trace_context: { format: traceparent, arg: 16 }
";
    let expected = [
        "app.yaml:5:24: probes[0].functions[0].trace_context: `format: traceparent` needs `arg`, the argument index",
        "app.yaml:7:24: probes[0].functions[1].trace_context: `format: ids` needs `span_id_arg`, the argument index",
        "app.yaml:7:24: probes[0].functions[1].trace_context: `arg` does not go with `format: ids`",
        "app.yaml:9:24: probes[0].functions[2].trace_context: arg: 16 is out of range: arguments 0..=15 can be read",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
    let unknown = error(
        "probes:\n  - binary: demo\n    functions:\n      - symbol: f\n        trace_context: { format: b3, arg: 0 }\n",
    );
    assert_eq!(
        unknown,
        "app.yaml:5:34: probes[0].functions[0].trace_context.format: unknown variant `b3`, \
         expected one of traceparent, ids"
    );
}

#[test]
fn chain_mistakes() {
    let yaml = "\
probes:
  - binary: demo
    functions:
      - symbol: f
        args:
          - { index: 0, name: a, type: i32, offsets: [] }
          - { index: 0, name: b, type: i32, offsets: [0, 8, 8, 8, 8, 0] }
          - { index: 0, name: c, type: str, offsets: [8], len_arg: 1 }
          - { index: 0, name: d, type: i32, path: '->x', offsets: [0] }
          - { index: 1, name: e }
          - { index: 2, name: f, path: '->x' }
        return: { name: code, type: i32, offsets: [0, 0, 0, 0, 0, 0] }
      - symbol: g
        return: { name: code }
      - symbol: h
        return: { name: code, path: '->code', offsets: [8] }
";
    let expected = [
        "app.yaml:6:13: probes[0].functions[0].args[0].offsets: 0 offsets: give 1 to 5 (at most 4 pointers followed)",
        "app.yaml:7:13: probes[0].functions[0].args[1].offsets: 6 offsets: give 1 to 5 (at most 4 pointers followed)",
        "app.yaml:8:13: probes[0].functions[0].args[2].len_arg: `len_arg` does not go with a chain of pointers (`path` or `offsets`) at entry; it does with `at: return`",
        "app.yaml:9:13: probes[0].functions[0].args[3].path: give `path` or `offsets` (the same chain, by number), not both",
        "app.yaml:10:13: probes[0].functions[0].args[4].type: `type` is required (only an argument with a `path` may leave it to DWARF)",
        "app.yaml:12:17: probes[0].functions[0].return.offsets: 6 offsets: give 1 to 5 (at most 4 pointers followed)",
        "app.yaml:14:17: probes[0].functions[1].return.type: `type` is required (only a return value with a `path` may leave it to DWARF)",
        "app.yaml:16:17: probes[0].functions[2].return.path: give `path` or `offsets` (the same chain, by number), not both",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

#[test]
fn usdt_mistakes() {
    let yaml = "\
probes:
  - binary: postgres
    usdt:
      - { probe: query__start }
      - { probe: 'pg:a', until: 'pg:a' }
      - { probe: 'pg:b', until: 'pg:c', event: true }
      - { probe: 'pg:d', until_args: [{ index: 0, name: rows }] }
      - probe: 'pg:e'
        until: 'pg:f'
        span_name: 'q {text}'
        args: [{ index: 0, name: id }]
        until_args: [{ index: 0, name: id }, { index: 1, name: text, type: str }]
      - { probe: 'pg:e' }
";
    let expected = [
        "app.yaml:4:18: probes[0].usdt[0].probe: `query__start` is not `provider:name`",
        "app.yaml:5:9: probes[0].usdt[1].until: a span cannot end at the probe that starts it",
        "app.yaml:6:48: probes[0].usdt[2].event: an event has no duration: give `event` or `until`, not both",
        "app.yaml:7:9: probes[0].usdt[3].until_args: `until_args` are read at the `until` probe: give `until`",
        "app.yaml:8:9: probes[0].usdt[4].span_name: `{text}` names no captured argument (captured: id)",
        "app.yaml:12:22: probes[0].usdt[4].until_args[0].name: attribute `id` is also an argument of the start probe",
        "app.yaml:12:46: probes[0].usdt[4].until_args[1].type: an `until` argument is read as a number when the span ends; its memory is not captured (capture a pointer as `ptr`)",
        "app.yaml:13:18: probes[0].usdt[5].probe: this probe already starts a span for this binary",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

#[test]
fn reading_at_return_mistakes() {
    let yaml = "\
probes:
  - binary: demo
    functions:
      - symbol: f
        args:
          - { index: 1, name: a, type: bytes, len: 16, len_arg: return }
          - { index: 1, name: b, type: i32, at: return }
          - { index: 1, name: c, type: str, len_arg: '*2' }
          - { index: 3, name: d, type: bytes, len: 8, at: return, len_arg: '*3' }
          - { index: 4, name: e, type: bytes, len: 8, at: return, len_arg: ret }
          - { index: 5, name: f, type: bytes, len: 8, at: later }
          - { index: 2, name: g, type: ptr }
          - { index: 2, name: h, type: ptr }
    usdt:
      - probe: 'p:q'
        args:
          - { index: 0, type: str, at: return, len_arg: return }
";
    let expected = [
        "app.yaml:6:13: probes[0].functions[0].args[0].len_arg: `len_arg: return` counts what the call wrote, known when it returns: add `at: return`",
        "app.yaml:7:13: probes[0].functions[0].args[1].at: only `str` and `bytes` arguments are read at return (what the call wrote behind a pointer)",
        "app.yaml:8:13: probes[0].functions[0].args[2].len_arg: `len_arg: \"*2\"` counts what the call wrote, known when it returns: add `at: return`",
        "app.yaml:9:13: probes[0].functions[0].args[3].len_arg: 3 is this argument's own index; name the argument that counts its bytes",
        "app.yaml:10:76: probes[0].functions[0].args[4].len_arg: `ret` is not an argument's index (`2`), `return` (the return value), or `\"*N\"` (the word argument N points to, read at return)",
        "app.yaml:11:59: probes[0].functions[0].args[5].at: unknown variant `later`, expected one of entry, return",
        "app.yaml:13:13: probes[0].functions[0].args[7].index: argument 2 is captured twice",
        "app.yaml:17:13: probes[0].usdt[0].args[0].at: a USDT probe has no return to read at; read what an `until` probe sees with `until_args`",
    ];
    assert_eq!(error(yaml), expected.join("\n"));
}

#[test]
fn stack_options() {
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        stack: {{ unwind: frames }}\n"
        )),
        "app.yaml:5:26: probes[0].functions[0].stack.unwind: unknown variant `frames`, expected one of auto, fp, dwarf"
    );
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        stack: {{ unwind: dwarf, byte: 4096 }}\n"
        )),
        "app.yaml:5:33: probes[0].functions[0].stack.byte: unknown field `byte`, expected one of unwind, bytes (did you mean `bytes`?)"
    );
    assert_eq!(
        error(&format!(
            "{HEAD}      - symbol: f\n        stack: {{ unwind: dwarf, bytes: 100000 }}\n"
        )),
        "app.yaml:5:16: probes[0].functions[0].stack.bytes: 100000: the bytes of stack copied at each entry are a multiple of 8 from 512 to 65536"
    );
    assert_eq!(
        error(&format!("{HEAD}      - symbol: f\n        stack: 3\n")),
        "app.yaml:5:9: probes[0].functions[0].stack: invalid type: integer `3`, expected `true`, `false`, or `{ unwind: fp | dwarf | auto, bytes: N }`"
    );
}

#[test]
fn executable_targets() {
    assert_eq!(
        error("probes:\n  - functions: [{ symbol: f }]\n"),
        "app.yaml:2:5: probes[0]: give `binary` (a file to probe) or `executable` (the processes running one)"
    );
    assert_eq!(
        error(
            "probes:\n  - binary: app\n    executable: /usr/bin/app\n    functions: [{ symbol: f }]\n"
        ),
        "app.yaml:3:17: probes[0].executable: give `binary` or `executable`, not both"
    );
    assert_eq!(
        error("probes:\n  - executable: bin/app\n    functions: [{ symbol: f }]\n"),
        "app.yaml:2:17: probes[0].executable: `bin/app`: an absolute path, as the processes' own mount namespace names it (`/usr/local/bin/app`), or a file name that may be a glob (`app*`), without a directory"
    );
    assert_eq!(
        error("probes:\n  - executable: 'app['\n    functions: [{ symbol: f }]\n"),
        "app.yaml:2:17: probes[0].executable: `app[`: not a glob: Pattern syntax error near position 3: invalid range pattern"
    );
    assert_eq!(
        error(
            "probes:\n  - executable: app\n    container: 3F2A-x\n    functions: [{ symbol: f }]\n"
        ),
        "app.yaml:3:16: probes[0].container: `3F2A-x`: a container id, or its start, is up to 64 lowercase hex digits (as `docker ps` or `crictl ps` show it)"
    );
    assert_eq!(
        error(
            "probes:\n  - executable: app\n    pid: 7\n    container: 3f2a\n    functions: [{ symbol: f }]\n"
        ),
        "app.yaml:4:16: probes[0].container: give `pid` or `container`, not both"
    );
    assert_eq!(
        error("probes:\n  - binary: app\n    library: libc.so.6\n    functions: [{ symbol: f }]\n"),
        "app.yaml:3:14: probes[0].library: names a library of the processes an `executable` finds: give `executable` (for a library of spanprobe's own filesystem, `binary`)"
    );
}
