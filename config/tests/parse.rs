//! What a valid config turns into, and that no input makes the parser panic.

use std::{path::Path, time::Duration};

use proptest::prelude::*;
use spanprobe_config::{
    AttributeValue, Comparison, Compression, Condition, ExporterConfig, OtlpProtocol, StdoutFormat,
    ValueType, parse,
};

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("t0k".into()),
        _ => None,
    }
}

const FULL: &str = r#"
service_name: checkout
resource: { deployment.environment: prod }
exporter:
  otlp:
    endpoint: http://collector:4318
    protocol: http/protobuf
    headers: { authorization: "Bearer ${TOKEN}" }
    timeout: 5s
    compression: gzip
batch: { queue_size: 1000, batch_size: 100, delay: 50ms }
probes:
  - binary: ./server
    pid: 4242
    functions:
      - symbol: "myapp::db::*::query"
        span_name: db.query
        args:
          - { index: 0, name: sql, type: str, max_len: 256 }
          - { index: 1, type: u64 }
          - { index: 6, name: seventh, type: bool }
          - { index: 7, name: blob, type: bytes, len: 16 }
          - { index: 2, name: conn, type: ptr }
        return: { name: rc, type: i32, error_when: "< 0" }
        attributes: { db.system: postgresql, retries: 3, cached: false }
        sample_rate: 0.25
      - offset: 0x1139
      - address: 0x401139
"#;

#[test]
fn every_key_parses_into_its_value() {
    let config = parse(Path::new("full.yaml"), FULL, &env).unwrap();
    assert_eq!(config.service_name.as_deref(), Some("checkout"));
    assert_eq!(config.resource["deployment.environment"], "prod");
    let ExporterConfig::Otlp(otlp) = &config.exporter else {
        panic!("not otlp")
    };
    assert_eq!(
        otlp.endpoint.as_ref().map(|e| e.value.as_str()),
        Some("http://collector:4318")
    );
    assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(otlp.headers["authorization"], "Bearer t0k");
    assert_eq!(otlp.timeout, Some(Duration::from_secs(5)));
    assert_eq!(otlp.compression, Compression::Gzip);
    assert_eq!(
        (config.batch.queue_size, config.batch.batch_size),
        (1000, 100)
    );
    assert_eq!(config.batch.delay, Duration::from_millis(50));

    let target = &config.probes[0];
    assert_eq!(target.binary.as_ref().unwrap().value, "./server");
    assert_eq!(target.pid.as_ref().map(|p| p.value), Some(4242));
    let f = &target.functions[0];
    assert_eq!(
        f.symbol.as_ref().map(|s| s.value.as_str()),
        Some("myapp::db::*::query")
    );
    assert_eq!(
        f.symbol
            .as_ref()
            .map(|s| (s.position.line, s.position.column)),
        Some((16, 17))
    );
    let args: Vec<_> = f
        .args
        .iter()
        .map(|a| (a.index, a.attribute_name(), a.value_type(), a.memory_len()))
        .collect();
    assert_eq!(
        args,
        [
            (0, "sql".into(), ValueType::Str, 256),
            (1, "arg1".into(), ValueType::U64, 0),
            (6, "seventh".into(), ValueType::Bool, 0),
            (7, "blob".into(), ValueType::Bytes, 16),
            (2, "conn".into(), ValueType::Ptr, 0),
        ]
    );
    let ret = f.return_value.as_ref().unwrap();
    assert_eq!(ret.attribute_name(), "rc");
    assert_eq!(
        ret.error_when,
        Some(Condition {
            op: Comparison::Lt,
            value: 0
        })
    );
    assert_eq!(
        f.attributes["db.system"],
        AttributeValue::String("postgresql".into())
    );
    assert_eq!(f.attributes["retries"], AttributeValue::Int(3));
    assert_eq!(f.attributes["cached"], AttributeValue::Bool(false));
    assert_eq!(f.sample_rate.as_ref().map(|r| r.value), Some(0.25));
    assert_eq!(
        target.functions[1].offset.as_ref().map(|o| o.value),
        Some(0x1139)
    );
    assert_eq!(
        target.functions[2].address.as_ref().map(|a| a.value),
        Some(0x401139)
    );
}

/// `${VAR}` expands in any value, and the result is typed as YAML types what is written
/// there: a number field takes `42`, a bool `true`; a quoted value stays a string, but a
/// number field reads a number in it, as it reads `'42'` (in `{ }`, where `{` is YAML's, a
/// reference must be quoted).
#[test]
fn expanded_values_are_typed_as_written() {
    let env = |name: &str| match name {
        "TARGET_PID" => Some("4242".to_owned()),
        "N" => Some("128".to_owned()),
        "ON" => Some("true".to_owned()),
        "BIN" => Some("./server".to_owned()),
        _ => None,
    };
    let config = parse(
        Path::new("env.yaml"),
        "probes:
  - binary: ${BIN}
    pid: ${TARGET_PID}
    functions:
      - symbol: f
        stack: ${ON}
        args: [{ index: 0, type: str, max_len: '${N}' }]
        attributes:
          shard: ${N}
          label: '${N}'
          rate: ${MISSING:-0.5}
          host: ${MISSING:-a b}
",
        &env,
    )
    .unwrap();
    let target = &config.probes[0];
    assert_eq!(target.binary.as_ref().unwrap().value, "./server");
    let pid = target.pid.as_ref().expect("pid");
    assert_eq!(
        (pid.value, pid.position.line, pid.position.column),
        (4242, 3, 10)
    );
    let f = &target.functions[0];
    assert!(f.stack.value.is_on());
    assert_eq!(f.args[0].memory_len(), 128);
    assert_eq!(f.attributes["shard"], AttributeValue::Int(128));
    assert_eq!(f.attributes["label"], AttributeValue::String("128".into()));
    assert_eq!(f.attributes["rate"], AttributeValue::Float(0.5));
    assert_eq!(f.attributes["host"], AttributeValue::String("a b".into()));
}

#[test]
fn tls_keys() {
    let config = parse(
        Path::new("tls.yaml"),
        "exporter: { otlp: { endpoint: 'https://collector:4317', tls: { ca_file: certs/ca.pem } } }\n\
         probes: [{ binary: demo, functions: [{ symbol: f }] }]\n",
        &env,
    )
    .unwrap();
    let ExporterConfig::Otlp(otlp) = &config.exporter else {
        panic!("not otlp")
    };
    let tls = otlp.tls.as_ref().expect("tls section");
    let ca_file = tls.ca_file.as_ref().expect("ca_file");
    assert_eq!(ca_file.value, Path::new("certs/ca.pem"));
    assert_eq!((ca_file.position.line, ca_file.position.column), (1, 73));
    assert!(!tls.insecure_skip_verify.value);
}

#[test]
fn defaults() {
    let config = parse(
        Path::new("min.yaml"),
        "probes: [{ binary: demo, functions: [{ symbol: f, args: [{ index: 0, type: str }] }] }]\n",
        &env,
    )
    .unwrap();
    assert_eq!(config.exporter, ExporterConfig::Stdout(Default::default()));
    let ExporterConfig::Stdout(stdout) = &config.exporter else {
        unreachable!()
    };
    assert_eq!(stdout.format, StdoutFormat::Text);
    assert_eq!(config.batch, Default::default());
    let arg = &config.probes[0].functions[0].args[0];
    assert_eq!(
        (arg.attribute_name(), arg.memory_len()),
        ("arg0".into(), 64)
    );
}

#[test]
fn otel_variables_override_the_file() {
    let env = |name: &str| match name {
        "OTEL_SERVICE_NAME" => Some("from-env".to_owned()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://env:4317".to_owned()),
        _ => None,
    };
    let config = parse(
        Path::new("c.yaml"),
        "service_name: from-file\nprobes: [{ binary: demo, functions: [{ symbol: f }] }]\n",
        &env,
    )
    .unwrap();
    assert_eq!(config.service_name.as_deref(), Some("from-env"));
    let ExporterConfig::Otlp(otlp) = &config.exporter else {
        panic!("not otlp")
    };
    assert_eq!(
        otlp.endpoint.as_ref().map(|e| e.value.as_str()),
        Some("http://env:4317")
    );
}

#[test]
fn bundled_example_configs_parse() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for dir in std::fs::read_dir(&examples).unwrap() {
        let dir = dir.unwrap().path();
        // Kubernetes manifests are not spanprobe configs (the one in them is checked apart).
        if dir.ends_with("kubernetes") {
            continue;
        }
        for file in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                spanprobe_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
    }
    // demo, captures, compose, postgres and sslsniff.
    assert_eq!(seen, 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary text: an error or a config, never a panic.
    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC*") {
        let _ = parse(Path::new("fuzz.yaml"), &text, &env);
    }

    /// Text shaped like a config, with random keys, values and nesting; when it is refused,
    /// at least one problem says why.
    #[test]
    fn never_panics_on_config_like_text(
        lines in proptest::collection::vec(
            (0usize..4,
             prop::sample::select(vec!["probes:", "- binary: x", "functions:", "- symbol: f", "args:",
                 "- { index: 1, type: str }", "return: { type: i32, error_when: '< 0' }", "offset: 0x10",
                 "exporter: { otlp: {} }", "sample_rate: 2", "max_len: 9999", "type: f64", "[", "{", "${X}", "pid: -1",
                 "retrun: 1", "- 42", "binary: [x]", "index: 300", "type: i33", "stack: maybe",
                 "- &f { symbol: g }", "- *f", "<<: *f", "exporter: { stdout: {}, otlp: {} }", "binary:"])),
            0..20)
    ) {
        let text: String = lines.iter().map(|(indent, line)| format!("{}{line}\n", "  ".repeat(*indent))).collect();
        if let Err(error) = parse(Path::new("fuzz.yaml"), &text, &env) {
            prop_assert!(!error.problems().is_empty());
        }
    }
}

#[test]
fn stack_forms() {
    use spanprobe_config::{StackOptions, StackSpec, Unwind};
    let config = parse(
        Path::new("stack.yaml"),
        "probes:
  - binary: app
    functions:
      - { symbol: a, stack: true }
      - { symbol: b, stack: false }
      - { symbol: c }
      - { symbol: d, stack: { unwind: dwarf, bytes: 8192 } }
      - { symbol: e, stack: { unwind: fp } }
      - { symbol: f, stack: {} }
",
        &|_| None,
    )
    .unwrap();
    let stacks: Vec<StackSpec> = config.probes[0]
        .functions
        .iter()
        .map(|f| f.stack.value)
        .collect();
    let on = |unwind, bytes| StackSpec::On(StackOptions { unwind, bytes });
    assert_eq!(
        stacks,
        [
            on(Unwind::Auto, 16384),
            StackSpec::Off,
            StackSpec::Off,
            on(Unwind::Dwarf, 8192),
            on(Unwind::FramePointers, 16384),
            on(Unwind::Auto, 16384),
        ]
    );
}
