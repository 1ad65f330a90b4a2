//! `min_duration`: spans shorter than their function's minimum are dropped, and their
//! descendants with them. Children end (and arrive) before their parents, so the spans of a
//! trace are held until its root ends, then filtered as a tree.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::SpanData;

/// A held span, its function's minimum duration, and what travels with it.
#[derive(Debug)]
struct Held<T> {
    span: SpanData,
    min_duration: Option<Duration>,
    extra: T,
}

/// Spans of unfinished traces, bounded in number. `T` travels with each span (its resource).
#[derive(Debug)]
pub struct TraceBuffer<T> {
    traces: HashMap<TraceId, Vec<Held<T>>>,
    /// Trace ids in arrival order of their first span, for evicting the oldest.
    order: VecDeque<TraceId>,
    held: usize,
    max_held: usize,
    /// Spans dropped for being shorter than `min_duration`, or under such a span.
    pub dropped: u64,
}

impl<T> TraceBuffer<T> {
    pub fn new(max_held: usize) -> Self {
        Self {
            traces: HashMap::new(),
            order: VecDeque::new(),
            held: 0,
            max_held,
            dropped: 0,
        }
    }

    /// Takes one span; returns the spans that are ready to export: a whole filtered trace
    /// once its root arrives, or the oldest trace (filtered as far as it is known) when the
    /// buffer is full.
    pub fn push(
        &mut self,
        span: SpanData,
        min_duration: Option<Duration>,
        extra: T,
    ) -> Vec<(SpanData, T)> {
        let trace_id = span.span_context.trace_id();
        let is_root = span.parent_span_id == SpanId::INVALID;
        let spans = self.traces.entry(trace_id).or_insert_with(|| {
            self.order.push_back(trace_id);
            Vec::new()
        });
        spans.push(Held {
            span,
            min_duration,
            extra,
        });
        self.held += 1;
        let mut ready = Vec::new();
        if is_root {
            ready.extend(self.finish(trace_id));
        }
        while self.held > self.max_held {
            let Some(oldest) = self.order.front().copied() else {
                break;
            };
            ready.extend(self.finish(oldest));
        }
        ready
    }

    /// Every held trace, filtered as far as it is known (at shutdown).
    pub fn drain(&mut self) -> Vec<(SpanData, T)> {
        let ids: Vec<_> = self.order.iter().copied().collect();
        ids.into_iter().flat_map(|id| self.finish(id)).collect()
    }

    fn finish(&mut self, trace_id: TraceId) -> Vec<(SpanData, T)> {
        self.order.retain(|id| *id != trace_id);
        let Some(spans) = self.traces.remove(&trace_id) else {
            return Vec::new();
        };
        self.held -= spans.len();
        let parents: HashMap<SpanId, SpanId> = spans
            .iter()
            .map(|h| (h.span.span_context.span_id(), h.span.parent_span_id))
            .collect();
        let too_short: HashSet<SpanId> = spans
            .iter()
            .filter(|h| {
                let duration = h
                    .span
                    .end_time
                    .duration_since(h.span.start_time)
                    .unwrap_or_default();
                h.min_duration.is_some_and(|min| duration < min)
            })
            .map(|h| h.span.span_context.span_id())
            .collect();
        // A span goes if it or any ancestor held here is too short.
        let hops = spans.len();
        let dropped = |mut id: SpanId| {
            for _ in 0..=hops {
                if too_short.contains(&id) {
                    return true;
                }
                match parents.get(&id) {
                    Some(parent) if *parent != SpanId::INVALID => id = *parent,
                    _ => return false,
                }
            }
            false
        };
        let mut kept = Vec::with_capacity(spans.len());
        for held in spans {
            if dropped(held.span.span_context.span_id()) {
                self.dropped += 1;
            } else {
                kept.push((held.span, held.extra));
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use crate::test_span::test_span;

    use super::*;

    fn span(trace: u128, id: u64, parent: u64, micros: u64) -> SpanData {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        test_span(
            &format!("s{id}"),
            trace,
            id,
            parent,
            start,
            Duration::from_micros(micros),
        )
    }

    fn names(spans: &[(SpanData, ())]) -> Vec<String> {
        let mut names: Vec<_> = spans.iter().map(|(s, ())| s.name.to_string()).collect();
        names.sort();
        names
    }

    const MIN: Option<Duration> = Some(Duration::from_micros(50));

    #[test]
    fn short_spans_go_with_their_descendants() {
        let mut buffer = TraceBuffer::new(100);
        // Root 1 (long) > 2 (short) > 3 (long), and 1 > 4 (long). Children arrive first.
        assert!(buffer.push(span(7, 3, 2, 100), MIN, ()).is_empty());
        assert!(buffer.push(span(7, 2, 1, 10), MIN, ()).is_empty());
        assert!(buffer.push(span(7, 4, 1, 60), MIN, ()).is_empty());
        let ready = buffer.push(span(7, 1, 0, 500), MIN, ());
        assert_eq!(names(&ready), ["s1", "s4"]);
        assert_eq!(buffer.dropped, 2);
    }

    #[test]
    fn a_short_root_takes_its_whole_trace_and_functions_without_a_minimum_stay() {
        let mut buffer = TraceBuffer::new(100);
        buffer.push(span(1, 2, 1, 5), None, ());
        assert!(buffer.push(span(1, 1, 0, 20), MIN, ()).is_empty());
        assert_eq!(buffer.dropped, 2);
        buffer.push(span(2, 6, 5, 5), None, ());
        assert_eq!(
            names(&buffer.push(span(2, 5, 0, 5), None, ())),
            ["s5", "s6"]
        );
    }

    #[test]
    fn stays_bounded_and_drains() {
        let mut buffer = TraceBuffer::new(2);
        assert!(buffer.push(span(1, 2, 1, 100), MIN, ()).is_empty());
        assert!(buffer.push(span(2, 4, 3, 100), MIN, ()).is_empty());
        // Over the bound: the oldest trace goes out as far as it is known.
        assert_eq!(names(&buffer.push(span(3, 6, 5, 100), MIN, ())), ["s2"]);
        assert_eq!(names(&buffer.drain()), ["s4", "s6"]);
        assert_eq!(buffer.dropped, 0);
    }
}
