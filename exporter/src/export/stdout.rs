//! One line per span on the terminal, for trying spanprobe without a backend.

use std::{fmt::Write as _, io::Write as _, sync::Mutex, time::Duration};

use opentelemetry::{Value, trace::SpanId};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};

/// Writes each span as one line:
/// `<start> <service> <name> <duration> trace=<id> span=<id> parent=<id|-> <key>=<value>...`
pub struct LineExporter {
    service: String,
    out: Mutex<Box<dyn std::io::Write + Send>>,
}

impl LineExporter {
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    pub fn new(out: Box<dyn std::io::Write + Send>) -> Self {
        Self {
            service: String::new(),
            out: Mutex::new(out),
        }
    }
}

impl std::fmt::Debug for LineExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineExporter")
            .field("service", &self.service)
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
    for kv in &span.attributes {
        let _ = match &kv.value {
            Value::String(s) => write!(line, " {}={:?}", kv.key, s.as_str()),
            value => write!(line, " {}={value}", kv.key),
        };
    }
    line
}

impl SpanExporter for LineExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut text = String::new();
        for span in &batch {
            text.push_str(&format_span(&self.service, span));
            text.push('\n');
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("output lock poisoned".into()))?;
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = resource
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .map(|v| v.to_string())
            .unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use opentelemetry::{
        InstrumentationScope, KeyValue,
        trace::{SpanContext, SpanKind, Status, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

    use super::*;

    #[test]
    fn one_line_with_ids_duration_and_attributes() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let span = SpanData {
            span_context: SpanContext::new(
                TraceId::from(0xabc),
                SpanId::from(0x12),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::from(0x34),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "add".into(),
            start_time: start,
            end_time: start + Duration::from_nanos(1_500),
            attributes: vec![
                KeyValue::new("a", 1),
                KeyValue::new("c", "x"),
                KeyValue::new("ok", true),
            ],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::default(),
        };
        assert_eq!(
            format_span("demo", &span),
            "2023-11-14T22:13:20.000000Z demo add 1.5µs \
             trace=00000000000000000000000000000abc span=0000000000000012 \
             parent=0000000000000034 a=1 c=\"x\" ok=true"
        );
    }
}
