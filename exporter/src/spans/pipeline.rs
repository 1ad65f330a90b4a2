//! What happens to each ring-buffer record: decode, assemble the span, attach its process's
//! resource, queue it for export.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use opentelemetry::{Key, KeyValue, Value};

use opentelemetry_sdk::{Resource, trace::SpanEvents};
use spanprobe_common::{CallEnd, CallEvent};
use tokio::sync::mpsc;

use crate::{
    binary::elf::ElfInfo,
    events::{
        decode::{Message, decode},
        readback::BacktracePlan,
    },
    export::{QueuedSpan, SpanQueue},
    loss::Loss,
    metrics::Metrics,
    plan::{capture::CapturePlan, probe::Probe},
    spans::{
        backtraces::{Backtraces, ProbedAt},
        resource::Resources,
        span::SpanAssembler,
        summary::Summary,
        trace_buffer::{KeepRule, TraceBuffer},
        unwind::ProbedFile,
        windows::StackWindows,
    },
};

const THREAD_NAME: Key = Key::from_static_str("thread.name");

/// Events one span keeps at most (OpenTelemetry's default span limit); later ones are
/// counted as dropped on the span.
const MAX_EVENTS_PER_SPAN: usize = 128;
/// Open spans whose events are held at most, waiting for the span's record.
const MAX_SPANS_WITH_EVENTS: usize = 65_536;

/// Spans held for `min_duration` filtering at most; beyond it the oldest trace is sent as far
/// as it is known.
const MAX_HELD_SPANS: usize = 100_000;
/// How long a trace is held for `min_duration` filtering at most, waiting for its root.
const MAX_HOLD: Duration = Duration::from_secs(30);

/// What the pipeline hands back when it is done (its counts are in [`Metrics`]).
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    /// Per function id: whether a call of it arrived.
    pub called: Vec<bool>,
}

/// Turns records into queued spans.
#[derive(Debug)]
pub struct Pipeline {
    assembler: SpanAssembler,
    resources: Resources,
    /// Binary of each function id when it is a program (not a library), standing in for the
    /// executable of exited processes.
    programs: Vec<Option<PathBuf>>,
    queue: SpanQueue,
    /// The keep rule of each function id.
    keep_rules: Vec<KeepRule>,
    /// Present when some function has a keep rule.
    held: Option<TraceBuffer<Arc<Resource>>>,
    /// For each function id that captures stacks: how to read and place them.
    stack_sources: Vec<Option<StackSource>>,
    stacks: Backtraces,
    /// Stacks unwound from windows, waiting for their calls.
    windows: StackWindows,
    summary: Summary,
    /// Per function id: whether a call of it arrived.
    called: Vec<bool>,
    /// Where every record, and every record that did not become a span, is counted.
    metrics: Arc<Metrics>,
    /// Events of spans still open, by the span's (pid, stack, entry time): the span's record
    /// comes after them, when it ends.
    open_span_events: HashMap<(u32, u64, u64), SpanEvents>,
    /// Where the pids of processes that start a program go, when some target names
    /// processes by their executable.
    exec_notices: Option<mpsc::UnboundedSender<u32>>,
}

/// How to read a function's captured stacks, and where the function is.
#[derive(Debug)]
struct StackSource {
    plan: BacktracePlan,
    binary: PathBuf,
    file_offset: u64,
    elf: Option<Arc<ElfInfo>>,
}

const CODE_STACKTRACE: Key = Key::from_static_str("code.stacktrace");
const STACK_TRUNCATED: Key = Key::from_static_str("spanprobe.stack.truncated");

impl Pipeline {
    /// Turns records of `functions` (captured as `plans`, both indexed by function id) into
    /// spans on `queue`.
    pub fn new(
        functions: &[Probe],
        plans: &[CapturePlan],
        assembler: SpanAssembler,
        resources: Resources,
        queue: SpanQueue,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut pipeline = Self {
            assembler,
            resources,
            programs: Vec::new(),
            queue,
            keep_rules: Vec::new(),
            held: None,
            stack_sources: Vec::new(),
            stacks: Backtraces::new(),
            windows: StackWindows::default(),
            summary: Summary::default(),
            called: Vec::new(),
            metrics,
            open_span_events: HashMap::new(),
            exec_notices: None,
        };
        pipeline.add_tables(functions, plans);
        pipeline
    }

    /// Where the pids of processes that start a program go (see [`Message::Exec`]).
    pub fn send_exec_notices(&mut self, to: mpsc::UnboundedSender<u32>) {
        self.exec_notices = Some(to);
    }

    /// Adds `functions`, probed after start, with the ids that follow the last one's.
    pub fn extend(&mut self, functions: &[Probe], plans: &[CapturePlan]) {
        self.assembler.extend(functions, plans);
        self.add_tables(functions, plans);
    }

    /// Appends each function's entry to the tables indexed by function id.
    fn add_tables(&mut self, functions: &[Probe], plans: &[CapturePlan]) {
        let keep_rules = functions.iter().map(|f| KeepRule::of(&f.spec));
        self.keep_rules.extend(keep_rules);
        if self.held.is_none() && self.keep_rules.iter().any(|rule| rule.is_set()) {
            self.held = Some(TraceBuffer::new(MAX_HELD_SPANS, MAX_HOLD));
        }
        // Read each binary once, however many of its functions (a glob) capture stacks.
        let mut elves: HashMap<PathBuf, Option<Arc<ElfInfo>>> = HashMap::new();
        let stack_sources = functions.iter().zip(plans).map(|(f, plan)| {
            let plan = plan.stack.clone()?;
            let elf = elves
                .entry(f.binary.clone())
                .or_insert_with(|| ElfInfo::read(&f.binary).ok().map(Arc::new))
                .clone();
            Some(StackSource {
                plan,
                binary: f.binary.clone(),
                file_offset: f.file_offset,
                elf,
            })
        });
        self.stack_sources.extend(stack_sources);
        self.programs.extend(programs(functions));
        self.called
            .resize(self.called.len() + functions.len(), false);
    }

    /// Holds the event `event` carries for its span, which is still open.
    fn hold_event(&mut self, event: &CallEvent, data: &[u8]) {
        let Ok(span_event) = self.assembler.event(event, data) else {
            self.metrics.lost(Loss::UnknownFunction, 1);
            return;
        };
        let key = (event.pid, event.stack_id(), event.parent_entry_ns);
        if !self.open_span_events.contains_key(&key)
            && self.open_span_events.len() >= MAX_SPANS_WITH_EVENTS
        {
            self.metrics.dropped_events.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let events = self.open_span_events.entry(key).or_default();
        if events.events.len() < MAX_EVENTS_PER_SPAN {
            events.events.push(span_event);
        } else {
            events.dropped_count += 1;
            self.metrics.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn handle(&mut self, record: &[u8]) {
        match decode(record) {
            Ok(Message::Call(event, data)) => {
                self.metrics.events_read.fetch_add(1, Ordering::Relaxed);
                self.handle_event(&event, data);
            }
            Ok(Message::StackWindow(header, bytes)) => {
                if let Some(Some(source)) = self.stack_sources.get(header.function_id as usize) {
                    let probed = ProbedFile {
                        path: &source.binary,
                        file_offset: source.file_offset,
                    };
                    self.windows
                        .arrived(&header, bytes, source.plan.frames(), probed);
                }
            }
            Ok(Message::Exec(notice)) => {
                if let Some(to) = &self.exec_notices {
                    let _ = to.send(notice.pid);
                }
            }
            Err(error) => {
                self.metrics.events_read.fetch_add(1, Ordering::Relaxed);
                self.metrics.lost(Loss::Undecodable, 1);
                tracing::debug!(%error, "dropping record");
            }
        }
    }

    /// A call that userspace ended for the kernel side ([`crate::events::orphans`]).
    pub fn handle_ended(&mut self, event: &CallEvent) {
        self.metrics.events_read.fetch_add(1, Ordering::Relaxed);
        self.handle_event(event, &[]);
    }

    /// Turns one call, `data` its captured memory, into its span (or an event of its span).
    fn handle_event(&mut self, event: &CallEvent, data: &[u8]) {
        if CallEnd::from_u16(event.end) == Some(CallEnd::Event) {
            self.hold_event(event, data);
            return;
        }
        let span = match self.assembler.assemble(event, data) {
            Ok(span) => span,
            Err(error) => {
                self.metrics.lost(Loss::UnknownFunction, 1);
                tracing::debug!(%error, "dropping event");
                return;
            }
        };
        let mut span = span;
        // Checked first: most programs send no events, and a lookup hashes even in an empty map.
        if !self.open_span_events.is_empty()
            && let Some(events) =
                self.open_span_events
                    .remove(&(event.pid, event.stack_id(), event.entry_ns))
        {
            span.events = events;
        }
        if let Some(name) = self.resources.thread_name(event.pid, event.tid) {
            span.attributes.push(KeyValue::new(THREAD_NAME, name));
        }
        self.summary.record(&span);
        if CallEnd::from_u16(event.end).is_some_and(|end| {
            matches!(
                end,
                CallEnd::ThreadExit | CallEnd::Unwound | CallEnd::GoroutineExit
            )
        }) {
            self.metrics
                .incomplete_calls
                .fetch_add(1, Ordering::Relaxed);
        }
        let id = event.function_id as usize;
        if let Some(called) = self.called.get_mut(id) {
            *called = true;
        }
        if let Some(Some(source)) = self.stack_sources.get(id) {
            let addresses = match &source.plan {
                BacktracePlan::Walked(walked) => Some(walked.addresses(event, data)),
                BacktracePlan::Unwound { .. } => {
                    self.windows.take(event).map(|unwound| unwound.addresses)
                }
            };
            match addresses {
                Some(addresses) if !addresses.is_empty() => {
                    let probed = ProbedAt {
                        binary: &source.binary,
                        file_offset: source.file_offset,
                        elf: source.elf.as_deref(),
                    };
                    let stack =
                        self.stacks
                            .symbolize(event.pid, &addresses, source.plan.frames(), probed);
                    span.attributes.push(KeyValue::new(
                        CODE_STACKTRACE,
                        Value::String(stack.text.into()),
                    ));
                    if stack.truncated {
                        span.attributes.push(KeyValue::new(STACK_TRUNCATED, true));
                    }
                }
                Some(_) => {}
                // Its window did not fit in the ring buffer (counted by the kernel side).
                None => span.attributes.push(KeyValue::new(STACK_TRUNCATED, true)),
            }
        }
        let resource =
            self.resources
                .for_process(event.pid, self.programs[id].as_deref(), event.return_ns);
        // What stacks found in a gone process's mappings would misplace a later one's frames.
        let forgotten = self.resources.take_forgotten();
        if !forgotten.is_empty() {
            self.stacks.forget(&forgotten);
            self.windows.forget(&forgotten);
        }
        match &mut self.held {
            None => self.queue.push(QueuedSpan::new(resource, span)),
            Some(held) => {
                for (span, resource) in held.push(span, self.keep_rules[id], resource) {
                    self.queue.push(QueuedSpan::new(resource, span));
                }
                // The buffer counts what it drops; copied so that the ledger is current.
                self.metrics.left_out_by(held);
            }
        }
    }

    /// Sends what is still held, closes the queue (the export task then flushes and ends) and
    /// returns the per-name summary and which functions were called.
    pub fn finish(mut self) -> Finished {
        if let Some(held) = &mut self.held {
            for (span, resource) in held.drain() {
                self.queue.push(QueuedSpan::new(resource, span));
            }
            self.metrics.left_out_by(held);
        }
        Finished {
            summary: self.summary,
            called: self.called,
        }
    }
}

/// The binary of each function when it is a program, as its processes name it: a shared
/// library (one with a SONAME) must never stand in for the executable of the process that
/// loaded it.
fn programs(functions: &[Probe]) -> Vec<Option<PathBuf>> {
    let mut is_library: HashMap<&Path, bool> = HashMap::new();
    functions
        .iter()
        .map(|f| {
            let library = *is_library
                .entry(&f.binary)
                .or_insert_with(|| crate::binary::elf::soname(&f.binary).is_some());
            (!library).then(|| crate::plan::running::named_inside(&f.binary).into_owned())
        })
        .collect()
}
