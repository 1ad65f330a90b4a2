//! Completed calls to OpenTelemetry spans: pure, no I/O, so it is tested and benchmarked on
//! recorded events.

use std::borrow::Cow;

use opentelemetry::{
    InstrumentationScope, Key, KeyValue, Value,
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState},
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use spanprobe_common::CallEvent;
use spanprobe_config::ValueType;

use crate::{decode::register_value, ids::IdGenerator, ktime::BootClock, resolve::ProbedFunction};

/// What every span of one probed function shares, computed once.
#[derive(Debug, Clone)]
struct SpanTemplate {
    name: Cow<'static, str>,
    symbol: Value,
    args: Vec<(usize, Key, ValueType)>,
    ret: Option<(Key, ValueType)>,
}

impl SpanTemplate {
    fn new(function: &ProbedFunction) -> Self {
        let spec = &function.spec;
        Self {
            name: Cow::Owned(spec.span_name().to_owned()),
            symbol: Value::String(function.symbol.clone().into()),
            args: spec
                .args
                .iter()
                .map(|arg| {
                    (
                        usize::from(arg.index),
                        Key::new(arg.attribute_name()),
                        arg.ty,
                    )
                })
                .collect(),
            ret: spec
                .return_value
                .as_ref()
                .map(|ret| (Key::new(ret.attribute_name().to_owned()), ret.ty)),
        }
    }
}

/// An event named a function id that the attach table does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event for unknown function id {0}")]
pub struct UnknownFunction(pub u32);

/// Semantic-convention attribute keys used on every span.
const CODE_FUNCTION_NAME: Key = Key::from_static_str("code.function.name");
const THREAD_ID: Key = Key::from_static_str("thread.id");

/// Turns [`CallEvent`]s into [`SpanData`].
#[derive(Debug, Clone)]
pub struct SpanAssembler {
    templates: Vec<SpanTemplate>,
    clock: BootClock,
    ids: IdGenerator,
    scope: InstrumentationScope,
}

impl SpanAssembler {
    /// `functions` is the attach table: an event's `function_id` indexes it.
    pub fn new(functions: &[ProbedFunction], clock: BootClock, ids: IdGenerator) -> Self {
        Self {
            templates: functions.iter().map(SpanTemplate::new).collect(),
            clock,
            ids,
            scope: InstrumentationScope::builder("spanprobe")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }

    pub fn assemble(&self, event: &CallEvent) -> Result<SpanData, UnknownFunction> {
        let template = usize::try_from(event.function_id)
            .ok()
            .and_then(|id| self.templates.get(id))
            .ok_or(UnknownFunction(event.function_id))?;
        let (pid, tid) = (event.pid, event.tid);
        let span_id = self.ids.span_id(pid, tid, event.entry_ns);
        let parent_span_id = match event.parent_entry_ns {
            0 => SpanId::INVALID,
            parent => self.ids.span_id(pid, tid, parent),
        };
        let trace_id = self.ids.trace_id(pid, tid, event.root_entry_ns);

        let mut attributes = Vec::with_capacity(template.args.len() + 3);
        attributes.extend(template.args.iter().filter_map(|(index, key, ty)| {
            let raw = *event.args.get(*index)?;
            Some(KeyValue::new(key.clone(), register_value(raw, *ty)))
        }));
        if let Some((key, ty)) = &template.ret {
            attributes.push(KeyValue::new(key.clone(), register_value(event.ret, *ty)));
        }
        attributes.push(KeyValue::new(CODE_FUNCTION_NAME, template.symbol.clone()));
        attributes.push(KeyValue::new(THREAD_ID, i64::from(tid)));

        Ok(SpanData {
            span_context: SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: template.name.clone(),
            start_time: self.clock.to_system_time(event.entry_ns),
            end_time: self.clock.to_system_time(event.return_ns),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: self.scope.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{
        path::PathBuf,
        time::{Duration, SystemTime},
    };

    use spanprobe_config::{ArgSpec, FunctionSpec, ReturnSpec};

    use super::*;

    fn add_function() -> ProbedFunction {
        ProbedFunction {
            binary: PathBuf::from("/bin/demo"),
            symbol: "two_ints_and_return".into(),
            address: 0x1139,
            file_offset: 0x1139,
            spec: FunctionSpec {
                symbol: "two_ints_and_return".into(),
                span_name: Some("add".into()),
                args: vec![
                    ArgSpec {
                        index: 0,
                        name: Some("a".into()),
                        ty: ValueType::I32,
                    },
                    ArgSpec {
                        index: 1,
                        name: None,
                        ty: ValueType::I32,
                    },
                ],
                return_value: Some(ReturnSpec {
                    name: Some("sum".into()),
                    ty: ValueType::I32,
                }),
            },
        }
    }

    fn plain_function() -> ProbedFunction {
        ProbedFunction {
            symbol: "do_nothing_and_return".into(),
            spec: FunctionSpec {
                symbol: "do_nothing_and_return".into(),
                span_name: None,
                args: vec![],
                return_value: None,
            },
            ..add_function()
        }
    }

    fn assembler() -> SpanAssembler {
        SpanAssembler::new(
            &[add_function(), plain_function()],
            BootClock::with_offset(1_000_000_000_000_000_000),
            IdGenerator::with_key([1; 16]),
        )
    }

    fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn root_call_becomes_a_root_span_with_typed_attributes() {
        let event = CallEvent {
            pid: 10,
            tid: 11,
            function_id: 0,
            depth: 1,
            entry_ns: 5_000,
            return_ns: 7_500,
            parent_entry_ns: 0,
            root_entry_ns: 5_000,
            args: [3, (-4i32) as u32 as u64, 0, 0, 0, 0],
            ret: (-1i32) as u32 as u64,
        };
        let span = assembler().assemble(&event).unwrap();
        assert_eq!(span.name, "add");
        assert_eq!(span.span_kind, SpanKind::Internal);
        assert_eq!(span.parent_span_id, SpanId::INVALID);
        assert_eq!(attr(&span, "a"), Some(&Value::I64(3)));
        assert_eq!(attr(&span, "arg1"), Some(&Value::I64(-4)));
        assert_eq!(attr(&span, "sum"), Some(&Value::I64(-1)));
        assert_eq!(
            attr(&span, "code.function.name"),
            Some(&Value::from("two_ints_and_return"))
        );
        assert_eq!(attr(&span, "thread.id"), Some(&Value::I64(11)));
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_000_000_000_005_000);
        assert_eq!(span.start_time, start);
        assert_eq!(span.end_time, start + Duration::from_nanos(2_500));
    }

    #[test]
    fn nested_calls_link_to_their_parent_and_share_the_trace() {
        let assembler = assembler();
        let root = CallEvent {
            pid: 1,
            tid: 2,
            function_id: 1,
            depth: 1,
            entry_ns: 100,
            return_ns: 900,
            parent_entry_ns: 0,
            root_entry_ns: 100,
            ..Default::default()
        };
        let child = CallEvent {
            depth: 2,
            entry_ns: 200,
            return_ns: 300,
            parent_entry_ns: 100,
            ..root
        };
        let grandchild = CallEvent {
            depth: 3,
            entry_ns: 210,
            return_ns: 220,
            parent_entry_ns: 200,
            ..root
        };
        // Children end first: assemble them before their parents.
        let grandchild = assembler.assemble(&grandchild).unwrap();
        let child = assembler.assemble(&child).unwrap();
        let root = assembler.assemble(&root).unwrap();
        assert_eq!(grandchild.parent_span_id, child.span_context.span_id());
        assert_eq!(child.parent_span_id, root.span_context.span_id());
        let trace = root.span_context.trace_id();
        assert_eq!(child.span_context.trace_id(), trace);
        assert_eq!(grandchild.span_context.trace_id(), trace);
        assert_eq!(root.name, "do_nothing_and_return");
        assert_eq!(attr(&root, "return_value"), None);
    }

    #[test]
    fn separate_roots_and_threads_get_separate_traces() {
        let assembler = assembler();
        let first = CallEvent {
            pid: 1,
            tid: 2,
            function_id: 1,
            depth: 1,
            entry_ns: 100,
            root_entry_ns: 100,
            ..Default::default()
        };
        let second = CallEvent {
            entry_ns: 500,
            root_entry_ns: 500,
            ..first
        };
        let other_thread = CallEvent { tid: 3, ..first };
        let ids: Vec<_> = [first, second, other_thread]
            .iter()
            .map(|e| assembler.assemble(e).unwrap().span_context.trace_id())
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn unknown_function_ids_are_errors() {
        let event = CallEvent {
            function_id: 7,
            ..Default::default()
        };
        assert_eq!(
            assembler().assemble(&event).unwrap_err(),
            UnknownFunction(7)
        );
    }
}
