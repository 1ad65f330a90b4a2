//! What happens to each ring-buffer record: decode, assemble the span, attach its process's
//! resource, queue it for export.

use std::path::PathBuf;

use opentelemetry::{Key, KeyValue};

use crate::{
    decode::decode_event,
    export::{QueuedSpan, SpanQueue},
    resolve::ProbedFunction,
    resource::Resources,
    span::SpanAssembler,
};

const THREAD_NAME: Key = Key::from_static_str("thread.name");

/// Counts of records that did not become spans, plus the total read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineStats {
    pub events: u64,
    pub undecodable: u64,
    pub unknown_function: u64,
}

/// Turns records into queued spans.
#[derive(Debug)]
pub struct Pipeline {
    assembler: SpanAssembler,
    resources: Resources,
    /// Binary of each function id, standing in for the executable of exited processes.
    binaries: Vec<PathBuf>,
    queue: SpanQueue,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(
        functions: &[ProbedFunction],
        assembler: SpanAssembler,
        resources: Resources,
        queue: SpanQueue,
    ) -> Self {
        Self {
            assembler,
            resources,
            binaries: functions.iter().map(|f| f.binary.clone()).collect(),
            queue,
            stats: PipelineStats::default(),
        }
    }

    pub fn handle(&mut self, record: &[u8]) {
        self.stats.events += 1;
        let (event, data) = match decode_event(record) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.stats.undecodable += 1;
                tracing::debug!(%error, "dropping record");
                return;
            }
        };
        let span = match self.assembler.assemble(&event, data) {
            Ok(span) => span,
            Err(error) => {
                self.stats.unknown_function += 1;
                tracing::debug!(%error, "dropping event");
                return;
            }
        };
        let mut span = span;
        if let Some(name) = self.resources.thread_name(event.pid, event.tid) {
            span.attributes.push(KeyValue::new(THREAD_NAME, name));
        }
        let binary = &self.binaries[event.function_id as usize];
        let resource = self.resources.for_process(event.pid, binary);
        self.queue.push(QueuedSpan { resource, span });
    }

    /// Closes the queue (the export task then flushes and ends) and returns the counts.
    pub fn finish(self) -> PipelineStats {
        self.stats
    }
}
