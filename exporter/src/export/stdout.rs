//! One line per span on the terminal, for trying spanprobe without a backend.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use opentelemetry::{
    Key, Value,
    trace::{SpanId, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use spanprobe_config::StdoutFormat;

use super::QueuedSpan;

const SERVICE_NAME: Key = Key::from_static_str("service.name");

/// Writes each span as one line: text
/// (`<start> <service> <name> <duration> trace=<id> span=<id> parent=<id|-> <key>=<value>...`)
/// or a JSON object.
pub struct LineExporter {
    format: StdoutFormat,
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl LineExporter {
    pub fn stdout(format: StdoutFormat) -> Self {
        Self::new(format, Box::new(std::io::stdout()))
    }

    pub fn new(format: StdoutFormat, out: Box<dyn std::io::Write + Send>) -> Self {
        Self {
            format,
            out: Mutex::new(out),
        }
    }

    /// The lines for `spans`, each with its process's `service.name`.
    pub fn encode(&self, spans: &[QueuedSpan]) -> Bytes {
        let mut text = String::new();
        let mut service: Option<(&Arc<Resource>, String)> = None;
        for queued in spans {
            let name = match &service {
                Some((resource, name)) if Arc::ptr_eq(resource, &queued.resource) => name,
                _ => {
                    let name = queued
                        .resource
                        .get(&SERVICE_NAME)
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    &service.insert((&queued.resource, name)).1
                }
            };
            text.push_str(&match self.format {
                StdoutFormat::Text => format_span(name, &queued.span),
                StdoutFormat::Json => format_span_json(name, &queued.span),
            });
            text.push('\n');
        }
        text.into()
    }

    /// Writes what [`Self::encode`] made, whole: requests in flight at once do not mix
    /// their lines.
    pub fn write(&self, lines: &[u8]) -> std::io::Result<()> {
        // A writer that panicked mid-line leaves nothing worth protecting.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(lines)?;
        out.flush()
    }
}

impl std::fmt::Debug for LineExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineExporter")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Formats one span as [`LineExporter`] prints it.
pub fn format_span(service: &str, span: &SpanData) -> String {
    let start = humantime::format_rfc3339_micros(span.start_time);
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO);
    let parent = if span.parent_span_id == SpanId::INVALID {
        "-".to_owned()
    } else {
        span.parent_span_id.to_string()
    };
    let mut line = format!(
        "{start} {service} {name} {duration:?} trace={trace} span={span_id} parent={parent}",
        name = span.name,
        trace = span.span_context.trace_id(),
        span_id = span.span_context.span_id(),
    );
    if let Status::Error { description } = &span.status {
        let _ = write!(line, " status=ERROR({:?})", description.as_ref());
    }
    for kv in &span.attributes {
        let _ = match &kv.value {
            Value::String(s) => write!(line, " {}={:?}", kv.key, s.as_str()),
            value => write!(line, " {}={value}", kv.key),
        };
    }
    line
}

/// Formats one span as a JSON object on one line.
pub fn format_span_json(service: &str, span: &SpanData) -> String {
    let duration = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or(Duration::ZERO);
    let attributes: serde_json::Map<String, serde_json::Value> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
        .collect();
    let parent = (span.parent_span_id != SpanId::INVALID).then(|| span.parent_span_id.to_string());
    let status = match &span.status {
        Status::Error { description } => {
            serde_json::json!({ "code": "ERROR", "message": description })
        }
        Status::Ok => serde_json::json!({ "code": "OK" }),
        Status::Unset => serde_json::json!({ "code": "UNSET" }),
    };
    serde_json::json!({
        "start": humantime::format_rfc3339_nanos(span.start_time).to_string(),
        "duration_ns": u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        "service": service,
        "name": span.name,
        "trace_id": span.span_context.trace_id().to_string(),
        "span_id": span.span_context.span_id().to_string(),
        "parent_span_id": parent,
        "status": status,
        "attributes": attributes,
    })
    .to_string()
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => (*f).into(),
        other => other.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::KeyValue;

    use crate::test_span::test_span;

    use super::*;

    fn span() -> SpanData {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut span = test_span("add", 0xabc, 0x12, 0x34, start, Duration::from_nanos(1_500));
        span.attributes = vec![
            KeyValue::new("a", 1),
            KeyValue::new("c", "x"),
            KeyValue::new("ok", true),
        ];
        span
    }

    #[test]
    fn one_json_object_per_span() {
        let mut span = span();
        span.status = Status::error("rc = -1 (error_when < 0)");
        let json: serde_json::Value =
            serde_json::from_str(&format_span_json("demo", &span)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "start": "2023-11-14T22:13:20.000000000Z",
                "duration_ns": 1500,
                "service": "demo",
                "name": "add",
                "trace_id": "00000000000000000000000000000abc",
                "span_id": "0000000000000012",
                "parent_span_id": "0000000000000034",
                "status": { "code": "ERROR", "message": "rc = -1 (error_when < 0)" },
                "attributes": { "a": 1, "c": "x", "ok": true },
            })
        );
    }

    #[test]
    fn one_line_with_ids_duration_and_attributes() {
        let span = span();
        assert_eq!(
            format_span("demo", &span),
            "2023-11-14T22:13:20.000000Z demo add 1.5µs \
             trace=00000000000000000000000000000abc span=0000000000000012 \
             parent=0000000000000034 a=1 c=\"x\" ok=true"
        );
    }
}
