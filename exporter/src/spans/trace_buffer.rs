//! Keep rules: spans shorter than their function's `min_duration`, or with `keep: errors`
//! spans that did not fail, are dropped, and their descendants with them. Children end (and
//! arrive) before their parents, so the spans of a trace are held until its root ends, then
//! filtered as a tree. (The kernel applies the same rules to calls with no probed callee
//! when they return, which then never arrive.) A trace whose root runs for
//! long (a server's main loop) is sent as far as it is known after a while, as is the oldest
//! when too many spans are held.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, SystemTime},
};

use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;
use spanprobe_config::{FunctionSpec, Keep};

/// What a function's spans must be to be kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepRule {
    pub min_duration: Option<Duration>,
    /// `keep: errors`: only spans whose status is an error.
    pub errors_only: bool,
}

/// Why a span was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// Shorter than its function's `min_duration`.
    TooShort,
    /// With `keep: errors`, a call that did not fail.
    NotFailed,
}

impl KeepRule {
    pub fn of(spec: &FunctionSpec) -> Self {
        Self {
            min_duration: spec.min_duration.as_ref().map(|min| min.value),
            errors_only: spec.keep.value == Keep::Errors,
        }
    }

    /// Whether the rule leaves out any span.
    pub fn is_set(self) -> bool {
        self.min_duration.is_some() || self.errors_only
    }

    /// Why `span` is left out, if it is.
    fn leaves_out(self, span: &SpanData) -> Option<LeftOut> {
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        if self.min_duration.is_some_and(|min| duration < min) {
            Some(LeftOut::TooShort)
        } else if self.errors_only && !matches!(span.status, Status::Error { .. }) {
            Some(LeftOut::NotFailed)
        } else {
            None
        }
    }
}

/// A held span, its function's keep rule, and what travels with it.
#[derive(Debug)]
struct Held<T> {
    span: SpanData,
    rule: KeepRule,
    extra: T,
}

/// Spans of unfinished traces, bounded in number and in age. `T` travels with each span (its
/// resource).
#[derive(Debug)]
pub struct TraceBuffer<T> {
    traces: HashMap<TraceId, HeldTrace<T>>,
    /// Traces in arrival order of their first span, with its sequence number and end time,
    /// for sending the oldest. Entries of traces finished since are skipped when met (their
    /// number no longer matches), so finishing a trace does not search this.
    order: VecDeque<(TraceId, u64, SystemTime)>,
    next: u64,
    held: usize,
    max_held: usize,
    max_age: Duration,
    /// Spans dropped for being shorter than `min_duration`, or under such a span.
    pub too_short: u64,
    /// Spans dropped by `keep: errors` for not failing, or under such a span.
    pub not_failed: u64,
}

#[derive(Debug)]
struct HeldTrace<T> {
    number: u64,
    spans: Vec<Held<T>>,
}

impl<T> TraceBuffer<T> {
    /// Holds at most `max_held` spans, and a trace at most `max_age` after its first span
    /// ended, by the spans' own clock.
    pub fn new(max_held: usize, max_age: Duration) -> Self {
        Self {
            traces: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            held: 0,
            max_held,
            max_age,
            too_short: 0,
            not_failed: 0,
        }
    }

    /// Takes one span; returns the spans that are ready to export: a whole filtered trace
    /// once its root arrives, or the oldest traces (filtered as far as they are known) when
    /// the buffer is full or they have waited `max_age`.
    pub fn push(&mut self, span: SpanData, rule: KeepRule, extra: T) -> Vec<(SpanData, T)> {
        let trace_id = span.span_context.trace_id();
        // A span whose parent is in another process is this process's root of the trace.
        let is_root = span.parent_span_id == SpanId::INVALID || span.parent_span_is_remote;
        let now = span.end_time;
        let trace = self.traces.entry(trace_id).or_insert_with(|| {
            self.next += 1;
            self.order.push_back((trace_id, self.next, now));
            HeldTrace {
                number: self.next,
                spans: Vec::new(),
            }
        });
        trace.spans.push(Held { span, rule, extra });
        self.held += 1;
        let mut ready = Vec::new();
        if is_root {
            ready.extend(self.finish(trace_id));
        }
        while let Some(&(oldest, number, first)) = self.order.front() {
            if !self.holds(oldest, number) {
                // Finished since.
                self.order.pop_front();
                continue;
            }
            let too_old = now
                .duration_since(first)
                .is_ok_and(|age| age > self.max_age);
            if self.held <= self.max_held && !too_old {
                break;
            }
            self.order.pop_front();
            ready.extend(self.finish(oldest));
        }
        ready
    }

    /// Every held trace, filtered as far as it is known (at shutdown).
    pub fn drain(&mut self) -> Vec<(SpanData, T)> {
        let mut ready = Vec::new();
        while let Some((id, number, _)) = self.order.pop_front() {
            if self.holds(id, number) {
                ready.extend(self.finish(id));
            }
        }
        ready
    }

    /// Whether the trace an `order` entry names is still held (not finished since).
    fn holds(&self, trace_id: TraceId, number: u64) -> bool {
        self.traces
            .get(&trace_id)
            .is_some_and(|trace| trace.number == number)
    }

    fn finish(&mut self, trace_id: TraceId) -> Vec<(SpanData, T)> {
        let Some(HeldTrace { spans, .. }) = self.traces.remove(&trace_id) else {
            return Vec::new();
        };
        self.held -= spans.len();
        let parents: HashMap<SpanId, SpanId> = spans
            .iter()
            .map(|h| (h.span.span_context.span_id(), h.span.parent_span_id))
            .collect();
        let left_out: HashMap<SpanId, LeftOut> = spans
            .iter()
            .filter_map(|h| Some((h.span.span_context.span_id(), h.rule.leaves_out(&h.span)?)))
            .collect();
        // A span goes if it or any ancestor held here is left out, for the nearest one's
        // reason.
        let hops = spans.len();
        let reason = |mut id: SpanId| {
            for _ in 0..=hops {
                if let Some(reason) = left_out.get(&id) {
                    return Some(*reason);
                }
                match parents.get(&id) {
                    Some(parent) if *parent != SpanId::INVALID => id = *parent,
                    _ => return None,
                }
            }
            None
        };
        let mut kept = Vec::with_capacity(spans.len());
        for held in spans {
            match reason(held.span.span_context.span_id()) {
                Some(LeftOut::TooShort) => self.too_short += 1,
                Some(LeftOut::NotFailed) => self.not_failed += 1,
                None => kept.push((held.span, held.extra)),
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

    const MIN: KeepRule = KeepRule {
        min_duration: Some(Duration::from_micros(50)),
        errors_only: false,
    };
    const NONE: KeepRule = KeepRule {
        min_duration: None,
        errors_only: false,
    };
    const AGE: Duration = Duration::from_secs(30);

    #[test]
    fn short_spans_go_with_their_descendants() {
        let mut buffer = TraceBuffer::new(100, AGE);
        // Root 1 (long) > 2 (short) > 3 (long), and 1 > 4 (long). Children arrive first.
        assert!(buffer.push(span(7, 3, 2, 100), MIN, ()).is_empty());
        assert!(buffer.push(span(7, 2, 1, 10), MIN, ()).is_empty());
        assert!(buffer.push(span(7, 4, 1, 60), MIN, ()).is_empty());
        let ready = buffer.push(span(7, 1, 0, 500), MIN, ());
        assert_eq!(names(&ready), ["s1", "s4"]);
        assert_eq!(buffer.too_short, 2);
    }

    #[test]
    fn a_short_root_takes_its_whole_trace_and_functions_without_a_minimum_stay() {
        let mut buffer = TraceBuffer::new(100, AGE);
        buffer.push(span(1, 2, 1, 5), NONE, ());
        assert!(buffer.push(span(1, 1, 0, 20), MIN, ()).is_empty());
        assert_eq!(buffer.too_short, 2);
        buffer.push(span(2, 6, 5, 5), NONE, ());
        assert_eq!(
            names(&buffer.push(span(2, 5, 0, 5), NONE, ())),
            ["s5", "s6"]
        );
    }

    #[test]
    fn keep_errors_keeps_failed_spans_and_what_is_under_them() {
        let errors = KeepRule {
            min_duration: None,
            errors_only: true,
        };
        let failed = |mut span: SpanData| {
            span.status = Status::error("rc = -1");
            span
        };
        let mut buffer = TraceBuffer::new(100, AGE);
        // Root 1 (failed) > 2 (succeeded) > 3 (failed); 1 > 4 (failed) > 5 (no rule).
        assert!(
            buffer
                .push(failed(span(7, 3, 2, 10)), errors, ())
                .is_empty()
        );
        assert!(buffer.push(span(7, 2, 1, 10), errors, ()).is_empty());
        assert!(buffer.push(span(7, 5, 4, 10), NONE, ()).is_empty());
        assert!(
            buffer
                .push(failed(span(7, 4, 1, 10)), errors, ())
                .is_empty()
        );
        let ready = buffer.push(failed(span(7, 1, 0, 10)), errors, ());
        assert_eq!(names(&ready), ["s1", "s4", "s5"]);
        assert_eq!((buffer.not_failed, buffer.too_short), (2, 0));
        // Both rules: the nearest span left out says why.
        let both = KeepRule {
            errors_only: true,
            ..MIN
        };
        buffer.push(failed(span(8, 2, 1, 10)), both, ());
        assert!(buffer.push(span(8, 1, 0, 100), both, ()).is_empty());
        assert_eq!((buffer.not_failed, buffer.too_short), (3, 1));
    }

    #[test]
    fn stays_bounded_and_drains() {
        let mut buffer = TraceBuffer::new(2, AGE);
        assert!(buffer.push(span(1, 2, 1, 100), MIN, ()).is_empty());
        assert!(buffer.push(span(2, 4, 3, 100), MIN, ()).is_empty());
        // Over the bound: the oldest trace goes out as far as it is known.
        assert_eq!(names(&buffer.push(span(3, 6, 5, 100), MIN, ())), ["s2"]);
        assert_eq!(names(&buffer.drain()), ["s4", "s6"]);
        assert_eq!(buffer.too_short, 0);
    }

    #[test]
    fn a_trace_waits_at_most_its_age_then_goes_as_far_as_it_is_known() {
        let mut buffer = TraceBuffer::new(100, Duration::from_secs(1));
        let at = |trace, id, parent, micros, secs| {
            let mut span = span(trace, id, parent, micros);
            span.start_time += Duration::from_secs(secs);
            span.end_time += Duration::from_secs(secs);
            span
        };
        // A long-running root's child, then another trace's spans later on.
        assert!(buffer.push(at(1, 2, 1, 100, 0), MIN, ()).is_empty());
        assert!(buffer.push(at(2, 4, 3, 100, 0), MIN, ()).is_empty());
        assert!(buffer.push(at(2, 5, 3, 100, 1), MIN, ()).is_empty());
        // Past the age, both held traces go, oldest first, each as far as it is known.
        let ready = buffer.push(at(3, 7, 6, 100, 2), MIN, ());
        assert_eq!(names(&ready), ["s2", "s4", "s5"]);
        // A trace finished by its root leaves no stale entry behind to evict others.
        let root = buffer.push(at(3, 6, 0, 500, 2), MIN, ());
        assert_eq!(names(&root), ["s6", "s7"]);
        assert!(buffer.drain().is_empty());
    }
}
