//! Completed calls to OpenTelemetry spans: pure, no I/O, so it is tested and benchmarked on
//! recorded events.

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use opentelemetry::{
    InstrumentationScope, Key, KeyValue, Value,
    trace::{Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use spanprobe_common::{
    CallEnd, CallEvent, LINKED, PARENT_HANDED_OFF, TRACE_DERIVED, TraceContext,
};
use spanprobe_config::{AttributeValue, NamePart};

use crate::{
    events::{
        ktime::BootClock,
        readback::{ArgPlan, ReturnPlan, for_the_run},
    },
    plan::{capture::CapturePlan, probe::Probe},
    spans::ids::IdGenerator,
};

/// What every span of one probed function shares, computed once. Its strings are `'static`
/// ([`for_the_run`]), so copying them into each span allocates and counts nothing.
#[derive(Debug, Clone)]
struct SpanTemplate {
    name: SpanName,
    symbol: Value,
    args: Vec<ArgPlan>,
    ret: Option<ReturnPlan>,
    attributes: Vec<KeyValue>,
    /// For a Go function whose last result is an `error`: the error's dynamic type by its
    /// itab's address.
    go_error_types: Option<Arc<BTreeMap<u64, String>>>,
}

/// A span name: fixed, or filled from each span's captured arguments (`{name}`).
#[derive(Debug, Clone)]
enum SpanName {
    /// SpanData wants a `'static` name: one per probed function, kept for the run.
    Fixed(&'static str),
    Template(Vec<NamePiece>),
}

#[derive(Debug, Clone)]
enum NamePiece {
    Text(String),
    Attribute(Key),
}

impl SpanName {
    fn new(name: String) -> Self {
        let parts = spanprobe_config::name_parts(&name);
        if parts.iter().all(|part| matches!(part, NamePart::Text(_))) {
            return Self::Fixed(for_the_run(&name));
        }
        Self::Template(
            parts
                .into_iter()
                .map(|part| match part {
                    NamePart::Text(text) => NamePiece::Text(text.to_owned()),
                    NamePart::Argument(name) => NamePiece::Attribute(Key::new(name.to_owned())),
                })
                .collect(),
        )
    }
}

impl SpanTemplate {
    /// The name of a span (or event) with `attributes`: a placeholder whose argument has no
    /// value (its pointer faulted) stays as written.
    fn name(&self, attributes: &[KeyValue]) -> Cow<'static, str> {
        let pieces = match &self.name {
            SpanName::Fixed(name) => return Cow::Borrowed(name),
            SpanName::Template(pieces) => pieces,
        };
        let mut name = String::new();
        for piece in pieces {
            match piece {
                NamePiece::Text(text) => name.push_str(text),
                NamePiece::Attribute(key) => match attributes.iter().find(|kv| kv.key == *key) {
                    Some(kv) => name.push_str(&kv.value.as_str()),
                    None => {
                        name.push('{');
                        name.push_str(key.as_str());
                        name.push('}');
                    }
                },
            }
        }
        Cow::Owned(name)
    }

    fn new(function: &Probe, plan: &CapturePlan) -> Self {
        let spec = &function.spec;
        let name = spec
            .span_name
            .clone()
            .unwrap_or_else(|| function.symbol.clone());
        Self {
            name: SpanName::new(name),
            symbol: for_the_run(&function.symbol).into(),
            args: plan.args.clone(),
            ret: plan.ret.clone(),
            attributes: spec
                .attributes
                .iter()
                .map(|(key, value)| KeyValue::new(for_the_run(key), attribute_value(value)))
                .chain(function.source.iter().flat_map(|(file, line)| {
                    [
                        KeyValue::new(CODE_FILE_PATH, for_the_run(file)),
                        KeyValue::new(CODE_LINE_NUMBER, i64::try_from(*line).unwrap_or(i64::MAX)),
                    ]
                }))
                .collect(),
            go_error_types: function.go_error_types.clone(),
        }
    }
}

fn attribute_value(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Int(i) => Value::I64(*i),
        AttributeValue::Float(f) => Value::F64(*f),
        AttributeValue::String(s) => for_the_run(s).into(),
    }
}

/// An event named a function id that the attach table does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event for unknown function id {0}")]
pub struct UnknownFunction(pub u32);

/// Semantic-convention attribute keys used on every span.
const CODE_FUNCTION_NAME: Key = Key::from_static_str("code.function.name");
const THREAD_ID: Key = Key::from_static_str("thread.id");
const CODE_FILE_PATH: Key = Key::from_static_str("code.file.path");
const CODE_LINE_NUMBER: Key = Key::from_static_str("code.line.number");
/// Set on spans sent at entry, with no duration (no return probe).
const ENTRY_ONLY: Key = Key::from_static_str("spanprobe.entry_only");
/// The class of error a call returned (a Go `error`'s dynamic type).
const ERROR_TYPE: Key = Key::from_static_str("error.type");
/// Set on spans of calls that never returned, saying why.
const INCOMPLETE: Key = Key::from_static_str("spanprobe.incomplete");

/// For calls that did not return: the `spanprobe.incomplete` value and the status message.
/// `go`: the call was a Go function's, which a panic skips rather than a longjmp.
fn incomplete_reason(end: CallEnd, go: bool) -> Option<(&'static str, &'static str)> {
    match end {
        CallEnd::Returned | CallEnd::EntryOnly | CallEnd::Event => None,
        CallEnd::ThreadExit => Some(("thread_exit", "the thread or process exited inside it")),
        CallEnd::Unwound if go => Some(("unwound", "a panic unwound it, recovered by a caller")),
        CallEnd::Unwound => Some(("unwound", "a longjmp skipped it")),
        CallEnd::GoroutineExit => Some((
            "goroutine_exit",
            "its goroutine ended inside it (runtime.Goexit)",
        )),
    }
}

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
    /// Spans for `functions`, whose captures `plans` are read back (both indexed by id).
    pub fn new(
        functions: &[Probe],
        plans: &[CapturePlan],
        clock: BootClock,
        ids: IdGenerator,
    ) -> Self {
        Self {
            templates: functions
                .iter()
                .zip(plans)
                .map(|(function, plan)| SpanTemplate::new(function, plan))
                .collect(),
            clock,
            ids,
            scope: InstrumentationScope::builder("spanprobe")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }

    /// Adds spans for `functions`, probed after start, with the ids that follow the last one's.
    pub fn extend(&mut self, functions: &[Probe], plans: &[CapturePlan]) {
        let templates = functions.iter().zip(plans);
        self.templates
            .extend(templates.map(|(function, plan)| SpanTemplate::new(function, plan)));
    }

    fn template(&self, function_id: u32) -> Result<&SpanTemplate, UnknownFunction> {
        usize::try_from(function_id)
            .ok()
            .and_then(|id| self.templates.get(id))
            .ok_or(UnknownFunction(function_id))
    }

    /// The trace a call's context names: its ids, or the call userspace derives them from.
    fn context_trace(&self, pid: u32, context: &TraceContext) -> TraceId {
        if context.flags & TRACE_DERIVED != 0 {
            self.ids
                .trace_id(pid, context.trace_id[0], context.trace_id[1])
        } else {
            TraceId::from_bytes(context.trace_id_bytes())
        }
    }

    /// The event a [`CallEnd::Event`] record carries, for the span it belongs to: named as
    /// the probe's spans would be, its captured arguments as attributes.
    pub fn event(&self, event: &CallEvent, data: &[u8]) -> Result<Event, UnknownFunction> {
        let template = self.template(event.function_id)?;
        let mut attributes = Vec::with_capacity(template.args.len());
        for arg in &template.args {
            arg.attributes(event, data, &mut attributes);
        }
        Ok(Event::new(
            template.name(&attributes),
            self.clock.to_system_time(event.entry_ns),
            attributes,
            0,
        ))
    }

    /// The span of one completed call; `data` is the memory captured with it. (Sampling is
    /// decided in the kernel, at the trace's root: unsampled calls send no event.)
    pub fn assemble(&self, event: &CallEvent, data: &[u8]) -> Result<SpanData, UnknownFunction> {
        let template = self.template(event.function_id)?;
        let (pid, tid) = (event.pid, event.tid);
        let parent_entry_ns = (event.parent_entry_ns != 0).then_some(event.parent_entry_ns);
        let (mut trace_id, span_id, parent_span_id) = self.ids.span_ids(
            pid,
            event.stack_id(),
            event.root_entry_ns,
            event.entry_ns,
            parent_entry_ns,
        );
        let mut parent_span_id = parent_span_id.unwrap_or(SpanId::INVALID);
        // A call that read its caller's trace context joins that trace, as the child of the
        // caller's span; its probed callees join the same trace, as children of local spans.
        // A call that took a handed-off span joins its trace the same way, as its child, or
        // roots a trace of its own that links to it.
        let context = &event.context;
        let mut parent_span_is_remote = false;
        let mut links = SpanLinks::default();
        let handed_off = (context.flags & PARENT_HANDED_OFF != 0).then(|| {
            self.ids
                .span_id(pid, context.parent_stack, context.parent_span_id)
        });
        if context.flags & LINKED != 0 {
            trace_id = self.ids.trace_id(pid, event.stack_id(), event.entry_ns);
            parent_span_id = SpanId::INVALID;
            if let Some(linked) = handed_off {
                let linked = SpanContext::new(
                    self.context_trace(pid, context),
                    linked,
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::NONE,
                );
                links.links.push(Link::with_context(linked));
            }
        } else {
            if context.trace_id != [0; 2] {
                trace_id = self.context_trace(pid, context);
            }
            if let Some(parent) = handed_off {
                parent_span_id = parent;
            } else if context.parent_span_id != 0 {
                parent_span_is_remote = true;
                parent_span_id = SpanId::from_bytes(context.parent_span_id_bytes());
            }
        }

        // Room for what `assemble` adds and what the pipeline may add after it (thread name,
        // stack, truncation), so the vector is allocated once.
        let mut attributes =
            Vec::with_capacity(template.args.len() + template.attributes.len() + 6);
        for arg in &template.args {
            arg.attributes(event, data, &mut attributes);
        }
        let mut status = Status::Unset;
        let end = CallEnd::from_u16(event.end);
        let go = event.goroutine != 0;
        if let Some(incomplete) = end.and_then(|end| incomplete_reason(end, go)) {
            // The call never returned: there is no return value, and the span ends when the
            // loss was seen.
            status = Status::error(format!("call did not return: {}", incomplete.1));
            attributes.push(KeyValue::new(INCOMPLETE, incomplete.0));
        } else if end == Some(CallEnd::EntryOnly) {
            attributes.push(KeyValue::new(ENTRY_ONLY, true));
        } else {
            if let Some(ret) = &template.ret
                && let Some(error) = ret.attributes(event, &mut attributes)
            {
                status = Status::error(error);
            }
            if event.error_type != 0 {
                // OpenTelemetry's `error.type` is `_OTHER` where no class is known.
                let ty = template
                    .go_error_types
                    .as_ref()
                    .and_then(|types| types.get(&event.error_type))
                    .map_or("_OTHER", String::as_str);
                status = Status::error(format!("returned a non-nil error: {ty}"));
                attributes.push(KeyValue::new(ERROR_TYPE, ty.to_owned()));
            }
        }
        attributes.extend(template.attributes.iter().cloned());
        attributes.push(KeyValue::new(CODE_FUNCTION_NAME, template.symbol.clone()));
        // 0 for a goroutine's call ended after its process exited: which thread ran it last
        // is not known.
        if tid != 0 {
            attributes.push(KeyValue::new(THREAD_ID, i64::from(tid)));
        }

        Ok(SpanData {
            span_context: SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id,
            parent_span_is_remote,
            span_kind: SpanKind::Internal,
            name: template.name(&attributes),
            start_time: self.clock.to_system_time(event.entry_ns),
            end_time: self.clock.to_system_time(event.return_ns),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links,
            status,
            instrumentation_scope: self.scope.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use spanprobe_config::{ArgSpec, FunctionSpec, Located, ReturnSpec, ValueType};

    use super::*;

    fn add_function() -> Probe {
        let arg = |index, name| Located::unplaced(ArgSpec::new(index, name, ValueType::I32));
        let spec = FunctionSpec {
            symbol: Some(Located::unplaced("two_ints_and_return".into())),
            span_name: Some("add".into()),
            args: vec![arg(0, Some("a")), arg(1, None)],
            return_value: Some(Located::unplaced(ReturnSpec {
                error_when: Some("< 0".parse().unwrap()),
                ..ReturnSpec::new(Some("sum"), ValueType::I32)
            })),
            attributes: [("team".to_owned(), AttributeValue::String("core".into()))].into(),
            ..Default::default()
        };
        Probe {
            source: Some(("/src/demo.c".into(), 12)),
            ..Probe::new("/bin/demo", "two_ints_and_return", 0x1139, spec)
        }
    }

    fn plain_function() -> Probe {
        Probe {
            symbol: "do_nothing_and_return".into(),
            spec: FunctionSpec::default(),
            ..add_function()
        }
    }

    fn assembler() -> SpanAssembler {
        let functions = [add_function(), plain_function()];
        SpanAssembler::new(
            &functions,
            &crate::plan::capture::plans(&functions, &Default::default()),
            BootClock::with_offset(1_000_000_000_000_000_000),
            IdGenerator::with_key([1; 16]),
        )
    }

    fn assemble(assembler: &SpanAssembler, event: &CallEvent) -> SpanData {
        assembler.assemble(event, &[]).unwrap()
    }

    fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    fn root(function_id: u32, entry_ns: u64) -> CallEvent {
        CallEvent {
            pid: 1,
            tid: 2,
            function_id,
            depth: 1,
            entry_ns,
            return_ns: entry_ns + 100,
            root_entry_ns: entry_ns,
            root_function_id: function_id,
            ..Default::default()
        }
    }

    #[test]
    fn a_call_with_a_trace_context_joins_its_callers_trace() {
        let trace = [7; 16];
        let context = spanprobe_common::TraceContext::from_bytes(trace, [9; 8]);
        let handler = CallEvent {
            context,
            ..root(0, 1_000)
        };
        let callee = CallEvent {
            depth: 2,
            entry_ns: 1_010,
            parent_entry_ns: 1_000,
            context: spanprobe_common::TraceContext::from_bytes(trace, [0; 8]),
            ..root(1, 1_000)
        };
        let assembler = assembler();
        let (handler, callee) = (
            assemble(&assembler, &handler),
            assemble(&assembler, &callee),
        );
        assert_eq!(handler.span_context.trace_id(), TraceId::from_bytes(trace));
        assert_eq!(handler.parent_span_id, SpanId::from_bytes([9; 8]));
        assert!(handler.parent_span_is_remote);
        assert_eq!(callee.span_context.trace_id(), TraceId::from_bytes(trace));
        assert_eq!(callee.parent_span_id, handler.span_context.span_id());
        assert!(!callee.parent_span_is_remote);
        // Without a context, the trace is the thread's own, as before.
        let plain = assemble(&assembler, &root(0, 1_000));
        assert_ne!(plain.span_context.trace_id(), TraceId::from_bytes(trace));
        assert_eq!(plain.span_context.span_id(), handler.span_context.span_id());
    }

    #[test]
    fn root_call_becomes_a_root_span_with_typed_attributes() {
        let event = CallEvent {
            pid: 10,
            tid: 11,
            entry_ns: 5_000,
            return_ns: 7_500,
            root_entry_ns: 5_000,
            args: [3, (-4i32) as u32 as u64, 0, 0, 0, 0, 0, 0],
            ret: 7,
            ..root(0, 5_000)
        };
        let span = assemble(&assembler(), &event);
        assert_eq!(span.name, "add");
        assert_eq!(span.span_kind, SpanKind::Internal);
        assert_eq!(span.parent_span_id, SpanId::INVALID);
        assert_eq!(attr(&span, "a"), Some(&Value::I64(3)));
        assert_eq!(attr(&span, "arg1"), Some(&Value::I64(-4)));
        assert_eq!(attr(&span, "sum"), Some(&Value::I64(7)));
        assert_eq!(attr(&span, "team"), Some(&Value::from("core")));
        assert_eq!(
            attr(&span, "code.file.path"),
            Some(&Value::from("/src/demo.c"))
        );
        assert_eq!(attr(&span, "code.line.number"), Some(&Value::I64(12)));
        assert_eq!(
            attr(&span, "code.function.name"),
            Some(&Value::from("two_ints_and_return"))
        );
        assert_eq!(attr(&span, "thread.id"), Some(&Value::I64(11)));
        assert_eq!(span.status, Status::Unset);
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_000_000_000_005_000);
        assert_eq!(span.start_time, start);
        assert_eq!(span.end_time, start + Duration::from_nanos(2_500));
    }

    #[test]
    fn error_when_sets_the_status_with_the_value() {
        let event = CallEvent {
            ret: (-22i32) as u32 as u64,
            ..root(0, 100)
        };
        let span = assemble(&assembler(), &event);
        assert_eq!(span.status, Status::error("sum = -22 (error_when < 0)"));
    }

    #[test]
    fn nested_calls_link_to_their_parent_and_share_the_trace() {
        let assembler = assembler();
        let outer = root(1, 100);
        let child = CallEvent {
            depth: 2,
            entry_ns: 200,
            parent_entry_ns: 100,
            ..outer
        };
        let grandchild = CallEvent {
            depth: 3,
            entry_ns: 210,
            parent_entry_ns: 200,
            ..outer
        };
        // Children end first: assemble them before their parents.
        let grandchild = assemble(&assembler, &grandchild);
        let child = assemble(&assembler, &child);
        let outer = assemble(&assembler, &outer);
        assert_eq!(grandchild.parent_span_id, child.span_context.span_id());
        assert_eq!(child.parent_span_id, outer.span_context.span_id());
        let trace = outer.span_context.trace_id();
        assert_eq!(child.span_context.trace_id(), trace);
        assert_eq!(grandchild.span_context.trace_id(), trace);
        assert_eq!(outer.name, "do_nothing_and_return");
        assert_eq!(attr(&outer, "return_value"), None);
    }

    #[test]
    fn separate_roots_and_threads_get_separate_traces() {
        let assembler = assembler();
        let first = root(1, 100);
        let second = root(1, 500);
        let other_thread = CallEvent { tid: 3, ..first };
        let ids: Vec<_> = [first, second, other_thread]
            .iter()
            .map(|e| assemble(&assembler, e).span_context.trace_id())
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
    }

    #[test]
    fn calls_that_never_returned_are_errors_saying_why() {
        let event = CallEvent {
            end: CallEnd::ThreadExit as u16,
            ret: 5,
            ..root(0, 100)
        };
        let span = assemble(&assembler(), &event);
        assert_eq!(
            span.status,
            Status::error("call did not return: the thread or process exited inside it")
        );
        assert_eq!(
            attr(&span, "spanprobe.incomplete"),
            Some(&Value::from("thread_exit"))
        );
        assert_eq!(attr(&span, "sum"), None, "no return value");
        let event = CallEvent {
            end: CallEnd::Unwound as u16,
            ..root(0, 100)
        };
        let span = assemble(&assembler(), &event);
        assert_eq!(
            attr(&span, "spanprobe.incomplete"),
            Some(&Value::from("unwound"))
        );
    }

    #[test]
    fn unknown_function_ids_are_errors() {
        let event = CallEvent {
            function_id: 7,
            ..Default::default()
        };
        assert_eq!(
            assembler().assemble(&event, &[]).unwrap_err(),
            UnknownFunction(7)
        );
    }
}
