//! OTLP export requests written straight from spans into one buffer.
//!
//! opentelemetry-otlp first converts each batch into opentelemetry-proto's structs, copying
//! every key and string value into them, and then encodes those; at a million spans a second
//! that copying, not the network, is the bottleneck. This writes the same protobuf message
//! (`ExportTraceServiceRequest`, field for field what opentelemetry-proto's transform builds:
//! the tests decode both and compare) from the spans as they are.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use opentelemetry::{
    Array, InstrumentationScope, Key, KeyValue, Value,
    trace::{SpanContext, SpanId, SpanKind, Status},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::QueuedSpan;

/// `ExportTraceServiceRequest` for `spans`, grouped by resource and then by scope as the
/// OTLP model wants, keeping the spans' order within each group.
pub fn encode_request(spans: &[QueuedSpan], out: &mut Vec<u8>) {
    for group in group(spans) {
        // ExportTraceServiceRequest.resource_spans
        message(out, 1, |out| resource_spans(out, &group));
    }
}

/// The spans of one resource, by scope.
struct ResourceGroup<'a> {
    resource: &'a Resource,
    scopes: Vec<(&'a InstrumentationScope, Vec<&'a SpanData>)>,
}

fn group(spans: &[QueuedSpan]) -> Vec<ResourceGroup<'_>> {
    let mut groups: Vec<ResourceGroup<'_>> = Vec::new();
    let mut index_of: HashMap<*const Resource, usize> = HashMap::new();
    let mut previous: Option<(&Arc<Resource>, usize)> = None;
    for queued in spans {
        // Spans of one process usually come in runs: look the resource up when it changes.
        let index = match previous {
            Some((resource, index)) if Arc::ptr_eq(resource, &queued.resource) => index,
            _ => *index_of
                .entry(Arc::as_ptr(&queued.resource))
                .or_insert_with(|| {
                    groups.push(ResourceGroup {
                        resource: &queued.resource,
                        scopes: Vec::new(),
                    });
                    groups.len() - 1
                }),
        };
        previous = Some((&queued.resource, index));
        let scopes = &mut groups[index].scopes;
        let scope = &queued.span.instrumentation_scope;
        match scopes.iter_mut().find(|(known, _)| *known == scope) {
            Some((_, spans)) => spans.push(&queued.span),
            None => scopes.push((scope, vec![&queued.span])),
        }
    }
    groups
}

fn resource_spans(out: &mut Vec<u8>, group: &ResourceGroup<'_>) {
    // ResourceSpans.resource: Resource.attributes
    message(out, 1, |out| {
        for (key, value) in group.resource.iter() {
            key_value(out, 1, key, value);
        }
    });
    for (scope, spans) in &group.scopes {
        // ResourceSpans.scope_spans
        message(out, 2, |out| scope_spans(out, scope, spans));
    }
    string(out, 3, group.resource.schema_url().unwrap_or_default());
}

fn scope_spans(out: &mut Vec<u8>, scope: &InstrumentationScope, spans: &[&SpanData]) {
    // ScopeSpans.scope
    message(out, 1, |out| {
        string(out, 1, scope.name());
        string(out, 2, scope.version().unwrap_or_default());
        attributes(out, 3, scope.attributes());
    });
    for span in spans {
        // ScopeSpans.spans
        message(out, 2, |out| self::span(out, span));
    }
    string(out, 3, scope.schema_url().unwrap_or_default());
}

fn span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    context_ids(out, context);
    if span.parent_span_id != SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    fixed32(out, 16, flags(context, span.parent_span_is_remote));
    string(out, 5, &span.name);
    uint(out, 6, span_kind(&span.span_kind));
    fixed64(out, 7, unix_nanos(span.start_time));
    fixed64(out, 8, unix_nanos(span.end_time));
    attributes(out, 9, &span.attributes);
    uint(out, 10, span.dropped_attributes_count.into());
    for event in span.events.iter() {
        message(out, 11, |out| {
            fixed64(out, 1, unix_nanos(event.timestamp));
            string(out, 2, &event.name);
            attributes(out, 3, &event.attributes);
            uint(out, 4, event.dropped_attributes_count.into());
        });
    }
    uint(out, 12, span.events.dropped_count.into());
    for link in span.links.iter() {
        message(out, 13, |out| {
            context_ids(out, &link.span_context);
            attributes(out, 4, &link.attributes);
            uint(out, 5, link.dropped_attributes_count.into());
            fixed32(
                out,
                6,
                flags(&link.span_context, link.span_context.is_remote()),
            );
        });
    }
    uint(out, 14, span.links.dropped_count.into());
    // Span.status: always present, as opentelemetry-otlp sends it.
    message(out, 15, |out| {
        let (code, description) = match &span.status {
            Status::Unset => (0, ""),
            Status::Ok => (1, ""),
            Status::Error { description } => (2, description.as_ref()),
        };
        string(out, 2, description);
        uint(out, 3, code);
    });
}

/// Trace id, span id and trace state: fields 1 to 3 of both `Span` and `Span.Link`.
fn context_ids(out: &mut Vec<u8>, context: &SpanContext) {
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    let state = context.trace_state().header();
    string(out, 3, &state);
}

/// W3C trace flags plus the `SpanFlags` bits saying whether the parent is remote.
fn flags(context: &SpanContext, remote: bool) -> u32 {
    const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
    const CONTEXT_IS_REMOTE: u32 = 0x200;
    let base = u32::from(context.trace_flags().to_u8()) | CONTEXT_HAS_IS_REMOTE;
    if remote {
        base | CONTEXT_IS_REMOTE
    } else {
        base
    }
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

fn attributes<'a>(
    out: &mut Vec<u8>,
    field: u32,
    attributes: impl IntoIterator<Item = &'a KeyValue>,
) {
    for kv in attributes {
        key_value(out, field, &kv.key, &kv.value);
    }
}

fn key_value(out: &mut Vec<u8>, field: u32, key: &Key, value: &Value) {
    message(out, field, |out| {
        string(out, 1, key.as_str());
        message(out, 2, |out| any_value(out, value));
    });
}

/// The body of an `AnyValue`: one field of its `oneof`, written even when it is the default.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => bool_value(out, *b),
        Value::I64(i) => int_value(out, *i),
        Value::F64(f) => double_value(out, *f),
        Value::String(s) => string_value(out, s.as_str()),
        Value::Array(array) => message(out, 5, |out| array_values(out, array)),
        // `Value` is non-exhaustive: a kind added later travels as its text.
        other => string_value(out, &other.to_string()),
    }
}

/// `ArrayValue.values`, each an `AnyValue`.
fn array_values(out: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(values) => values
            .iter()
            .for_each(|b| message(out, 1, |out| bool_value(out, *b))),
        Array::I64(values) => values
            .iter()
            .for_each(|i| message(out, 1, |out| int_value(out, *i))),
        Array::F64(values) => values
            .iter()
            .for_each(|f| message(out, 1, |out| double_value(out, *f))),
        Array::String(values) => values
            .iter()
            .for_each(|s| message(out, 1, |out| string_value(out, s.as_str()))),
        other => message(out, 1, |out| string_value(out, &other.to_string())),
    }
}

fn string_value(out: &mut Vec<u8>, s: &str) {
    length_delimited(out, 1, s.as_bytes());
}

fn bool_value(out: &mut Vec<u8>, b: bool) {
    encode_key(2, WireType::Varint, out);
    encode_varint(u64::from(b), out);
}

fn int_value(out: &mut Vec<u8>, i: i64) {
    encode_key(3, WireType::Varint, out);
    // int64 is a plain two's-complement varint (not zigzag).
    encode_varint(i as u64, out);
}

fn double_value(out: &mut Vec<u8>, f: f64) {
    encode_key(4, WireType::SixtyFourBit, out);
    out.extend_from_slice(&f.to_le_bytes());
}

/// A nested message: its body is written in place after a one-byte length, which is moved
/// along when the body turns out to need a longer one (bodies under 128 bytes, most keys
/// and values, never move).
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    encode_key(field, WireType::LengthDelimited, out);
    let start = out.len();
    out.push(0);
    body(out);
    let len = out.len() - start - 1;
    let width = encoded_len_varint(len as u64);
    if width > 1 {
        out.resize(out.len() + width - 1, 0);
        out.copy_within(start + 1..start + 1 + len, start + width);
    }
    encode_varint(len as u64, &mut &mut out[start..start + width]);
}

/// The scalar fields below are left out when they hold the default, as proto3 does.
fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        length_delimited(out, field, bytes);
    }
}

fn length_delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        encode_key(field, WireType::Varint, out);
        encode_varint(value, out);
    }
}

fn fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        encode_key(field, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        encode_key(field, WireType::SixtyFourBit, out);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::{borrow::Cow, time::Duration};

    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::{
        tonic::collector::trace::v1::ExportTraceServiceRequest,
        transform::{common::tonic::ResourceAttributesWithSchema, trace::tonic},
    };
    use prost::Message as _;

    use super::*;
    use crate::test_span::test_span;

    /// What opentelemetry-otlp sends for the same spans: opentelemetry-proto's transform,
    /// one request per resource.
    fn reference(spans: &[QueuedSpan]) -> ExportTraceServiceRequest {
        let mut resource_spans = Vec::new();
        for group in group(spans) {
            let resource = ResourceAttributesWithSchema::from(group.resource);
            let batch: Vec<SpanData> = group
                .scopes
                .iter()
                .flat_map(|(_, spans)| spans.iter().map(|span| (*span).clone()))
                .collect();
            resource_spans.extend(tonic::group_spans_by_resource_and_scope(batch, &resource));
        }
        ExportTraceServiceRequest { resource_spans }
    }

    fn ours(spans: &[QueuedSpan]) -> ExportTraceServiceRequest {
        let mut out = Vec::new();
        encode_request(spans, &mut out);
        sorted(ExportTraceServiceRequest::decode(&out[..]).expect("valid protobuf"))
    }

    /// Resource attributes come from a hash map: compare them in one order.
    fn sorted(mut request: ExportTraceServiceRequest) -> ExportTraceServiceRequest {
        for resource_spans in &mut request.resource_spans {
            if let Some(resource) = &mut resource_spans.resource {
                resource.attributes.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        request
    }

    fn process(pid: i64) -> Arc<Resource> {
        Arc::new(
            Resource::builder_empty()
                .with_attributes([
                    KeyValue::new("service.name", "demo"),
                    KeyValue::new("process.pid", pid),
                ])
                .with_schema_url(
                    [KeyValue::new("host.name", "h")],
                    "https://opentelemetry.io/schemas/1.26.0",
                )
                .build(),
        )
    }

    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// A span with every kind of value, an error status, an event and a link.
    fn full_span() -> SpanData {
        let mut span = test_span(
            "add",
            0xabc,
            0x12,
            0x34,
            start(),
            Duration::from_nanos(1_500),
        );
        span.attributes = vec![
            KeyValue::new("b", true),
            KeyValue::new("i", -7),
            KeyValue::new("zero", 0),
            KeyValue::new("f", 1.5),
            KeyValue::new("s", "text"),
            KeyValue::new("empty", ""),
            KeyValue::new("bools", Value::Array(vec![true, false].into())),
            KeyValue::new("ints", Value::Array(vec![1_i64, -2].into())),
            KeyValue::new("floats", Value::Array(vec![0.5_f64].into())),
            KeyValue::new(
                "strings",
                Value::Array(vec![opentelemetry::StringValue::from("a")].into()),
            ),
            KeyValue::new("long", "x".repeat(300)),
        ];
        span.dropped_attributes_count = 2;
        span.status = Status::error("rc = -1 (error_when < 0)");
        span.span_kind = SpanKind::Client;
        span.events.events.push(Event::new(
            "thrown",
            start() + Duration::from_nanos(700),
            vec![KeyValue::new("why", "test")],
            1,
        ));
        span.events.dropped_count = 3;
        span.links.links.push(Link::new(
            SpanContext::new(
                TraceId::from(0xdef_u128),
                SpanId::from(0x56_u64),
                TraceFlags::SAMPLED,
                true,
                TraceState::from_key_value([("vendor", "v")]).unwrap(),
            ),
            vec![KeyValue::new("link", 1)],
            0,
        ));
        span.parent_span_is_remote = true;
        span.instrumentation_scope = InstrumentationScope::builder("spanprobe")
            .with_version("1.2.3")
            .with_attributes([KeyValue::new("scope.attr", "x")])
            .build();
        span
    }

    #[test]
    fn a_span_with_every_field_encodes_as_opentelemetry_proto_does() {
        let spans = [QueuedSpan::new(process(1), full_span())];
        assert_eq!(ours(&spans), sorted(reference(&spans)));
    }

    #[test]
    fn spans_are_grouped_by_resource_and_scope_in_order() {
        let (a, b) = (process(1), process(2));
        let plain = |id: u64| test_span("f", 0x1, id, 0, start(), Duration::from_micros(id));
        let mut other_scope = plain(9);
        other_scope.instrumentation_scope = InstrumentationScope::builder("other").build();
        let queued =
            |resource: &Arc<Resource>, span: SpanData| QueuedSpan::new(Arc::clone(resource), span);
        let spans = [
            queued(&a, plain(1)),
            queued(&b, plain(2)),
            queued(&a, plain(3)),
            queued(&a, other_scope),
            queued(&b, plain(4)),
        ];
        let request = ours(&spans);
        assert_eq!(request, sorted(reference(&spans)));
        let ids: Vec<Vec<Vec<u8>>> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| {
                s.spans
                    .iter()
                    .map(|span| span.span_id[7..].to_vec())
                    .collect()
            })
            .collect();
        assert_eq!(
            ids,
            [
                vec![vec![1], vec![3]],
                vec![vec![9]],
                vec![vec![2], vec![4]]
            ]
        );
    }

    #[test]
    fn bodies_longer_than_a_one_byte_length_keep_their_bytes() {
        let mut span = full_span();
        span.name = Cow::Owned("n".repeat(20_000));
        let spans = [QueuedSpan::new(process(1), span)];
        let request = ours(&spans);
        assert_eq!(
            request.resource_spans[0].scope_spans[0].spans[0].name.len(),
            20_000
        );
        assert_eq!(request, sorted(reference(&spans)));
    }

    #[test]
    fn an_empty_batch_is_an_empty_request() {
        let mut out = Vec::new();
        encode_request(&[], &mut out);
        assert!(out.is_empty());
    }
}
