//! The ledger: every count spanprobe keeps of a run, from the kernel's counters to the
//! exporter's, updated by the stages as they go. Two readouts list it: the Prometheus text on
//! an optional listen address ([`prometheus`]) and the report at exit ([`report`]).

pub mod prometheus;
pub mod report;

use std::sync::atomic::{AtomicU64, Ordering};

use spanprobe_common::Counter;

use crate::{
    loss::{Loss, Stage},
    spans::trace_buffer::TraceBuffer,
};

/// Counters and gauges, updated by the stages and read by scrapes and the exit report.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Completed calls read: ring-buffer records and the calls userspace ended.
    pub events_read: AtomicU64,
    /// Spans the backend accepted.
    pub spans_exported: AtomicU64,
    /// Calls that produced no exported span, indexed as [`Loss::ALL`].
    losses: [AtomicU64; Loss::COUNT],
    /// Export attempts that failed and were retried.
    pub export_retries: AtomicU64,
    pub queue_depth: AtomicU64,
    /// Calls that never returned (thread or goroutine exit, longjmp), exported all the same.
    pub incomplete_calls: AtomicU64,
    pub probes_attached: AtomicU64,
    /// Returns whose entry was not recorded (kernel): no span to lose, so no loss.
    pub returns_without_entry: AtomicU64,
    /// Trace context arguments that held no valid context (kernel): those calls are exported,
    /// in traces of their own, so no loss.
    pub invalid_trace_contexts: AtomicU64,
    /// Spans dropped by `min_duration` in userspace (they, or a span above them, were too
    /// short): what the config asked for, so no loss.
    pub below_min_duration: AtomicU64,
    /// Spans dropped by `keep: errors` in userspace (they, or a span above them, did not
    /// fail): what the config asked for, so no loss.
    pub not_failed: AtomicU64,
    /// Calls with no probed callee that their keep rules left out when they returned
    /// (kernel): no record was sent. What the config asked for, so no loss.
    pub left_out_at_return: AtomicU64,
    /// Calls (kernel) that did not meet their function's `when`, traced neither they nor
    /// their callees: what the config asked for, so no loss.
    pub filtered_by_when: AtomicU64,
    /// Stack windows (kernel) the ring buffer had no room for: their spans were sent without
    /// their stacks. Not a [`Loss`]: the spans were not lost.
    pub stack_windows_lost: AtomicU64,
    /// Programs started (kernel) whose notice the ring buffer had no room for: a new file of
    /// an `executable:` target they ran was not probed.
    pub execs_lost: AtomicU64,
    /// Files of `executable:` targets probed after start, as processes started them.
    pub files_attached_later: AtomicU64,
    /// Events (`event: true` probes) dropped: past a span's limit, or waiting for more open
    /// spans than are held. No [`Loss`], which counts calls whose span is lost: an event's span
    /// is still exported (past the limit saying how many events it dropped, as OpenTelemetry's
    /// span limits do), and adding events to `lost` would count two units as one.
    pub dropped_events: AtomicU64,
    /// Handoffs (kernel), indexed as [`HandoffOutcome::ALL`]: spans kept at a `from`, taken at
    /// a `to`, and `to`s that found none. Not losses: a `to` that finds none still makes its
    /// span, in a trace of its own.
    handoffs: [AtomicU64; HandoffOutcome::ALL.len()],
}

/// What became of a handoff, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffOutcome {
    Made,
    Taken,
    Missing,
}

impl HandoffOutcome {
    pub const ALL: [HandoffOutcome; 3] = [Self::Made, Self::Taken, Self::Missing];

    pub fn label(self) -> &'static str {
        match self {
            Self::Made => "made",
            Self::Taken => "taken",
            Self::Missing => "missing",
        }
    }
}

impl Metrics {
    /// Counts `count` more calls lost to `loss`.
    pub fn lost(&self, loss: Loss, count: u64) {
        self.losses[loss.index()].fetch_add(count, Ordering::Relaxed);
    }

    /// The calls lost to `loss` so far.
    pub fn lost_to(&self, loss: Loss) -> u64 {
        get(&self.losses[loss.index()])
    }

    /// The calls lost at `stage` so far.
    pub fn lost_at(&self, stage: Stage) -> u64 {
        Loss::ALL
            .into_iter()
            .filter(|loss| loss.stage() == stage)
            .map(|loss| self.lost_to(loss))
            .sum()
    }

    /// The calls lost so far, for every reason.
    pub fn lost_total(&self) -> u64 {
        Loss::ALL.into_iter().map(|loss| self.lost_to(loss)).sum()
    }

    /// Copies the counts of what `held` left out, so that the ledger is current.
    pub fn left_out_by<T>(&self, held: &TraceBuffer<T>) {
        self.below_min_duration
            .store(held.too_short, Ordering::Relaxed);
        self.not_failed.store(held.not_failed, Ordering::Relaxed);
    }

    /// The handoffs that had `outcome` so far.
    pub fn handoffs(&self, outcome: HandoffOutcome) -> u64 {
        get(&self.handoffs[outcome as usize])
    }

    /// Copies a kernel-side counter's `total` into its place here. Every counter is matched by
    /// name, so one added to the kernel side does not compile until it is given a place.
    pub fn set_kernel(&self, counter: Counter, total: u64) {
        let slot = match counter {
            Counter::RingBufFull => &self.losses[Loss::RingBufferFull.index()],
            Counter::DepthExceeded => &self.losses[Loss::DepthExceeded.index()],
            Counter::NoThreadStack => &self.losses[Loss::NoThreadStack.index()],
            Counter::MemoryLost => &self.losses[Loss::MemoryLost.index()],
            Counter::ReturnWithoutEntry => &self.returns_without_entry,
            Counter::InvalidTraceContext => &self.invalid_trace_contexts,
            Counter::HandoffMade => &self.handoffs[HandoffOutcome::Made as usize],
            Counter::HandoffTaken => &self.handoffs[HandoffOutcome::Taken as usize],
            Counter::HandoffMissing => &self.handoffs[HandoffOutcome::Missing as usize],
            Counter::FilteredByWhen => &self.filtered_by_when,
            Counter::LeftOutAtReturn => &self.left_out_at_return,
            Counter::StackWindowLost => &self.stack_windows_lost,
            Counter::ExecsLost => &self.execs_lost,
        };
        slot.store(total, Ordering::Relaxed);
    }
}

/// A count's value now. Relaxed: every count stands alone, and the exit report reads them
/// after the tasks that count have been joined.
fn get(value: &AtomicU64) -> u64 {
    value.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each reason in the kernel stage is fed by a counter of its own.
    #[test]
    fn every_kernel_loss_has_a_counter() {
        let metrics = Metrics::default();
        for (slot, counter) in Counter::ALL.into_iter().enumerate() {
            metrics.set_kernel(counter, 1 << slot);
        }
        let mut seen = 0;
        for loss in Loss::ALL {
            let count = metrics.lost_to(loss);
            assert_eq!(
                count != 0,
                loss.stage() == Stage::Kernel,
                "{loss:?}: {count}"
            );
            assert_eq!(seen & count, 0, "{loss:?} shares a counter");
            seen |= count;
        }
        seen |= get(&metrics.returns_without_entry)
            | get(&metrics.invalid_trace_contexts)
            | get(&metrics.filtered_by_when)
            | get(&metrics.left_out_at_return)
            | get(&metrics.stack_windows_lost)
            | get(&metrics.execs_lost);
        for outcome in HandoffOutcome::ALL {
            seen |= metrics.handoffs(outcome);
        }
        assert_eq!(
            seen,
            (1 << Counter::ALL.len()) - 1,
            "every counter has a place"
        );
    }

    #[test]
    fn losses_add_up_by_stage() {
        let metrics = Metrics::default();
        metrics.set_kernel(Counter::RingBufFull, 6);
        metrics.set_kernel(Counter::NoThreadStack, 7);
        metrics.set_kernel(Counter::ReturnWithoutEntry, 1000);
        metrics.lost(Loss::Undecodable, 1);
        metrics.lost(Loss::UnknownFunction, 2);
        metrics.lost(Loss::ExportFailed, 3);
        metrics.lost(Loss::QueueFull, 4);
        metrics.lost(Loss::ShutdownDeadline, 5);
        metrics.lost(Loss::QueueFull, 10);
        assert_eq!(metrics.lost_at(Stage::Kernel), 6 + 7);
        assert_eq!(metrics.lost_at(Stage::Pipeline), 1 + 2);
        assert_eq!(metrics.lost_at(Stage::Export), 3 + 4 + 5 + 10);
        assert_eq!(metrics.lost_total(), 1 + 2 + 3 + 4 + 5 + 6 + 7 + 10);
        // A kernel total replaces the copy before it.
        metrics.set_kernel(Counter::RingBufFull, 8);
        assert_eq!(metrics.lost_to(Loss::RingBufferFull), 8);
    }

    /// Both readouts name every reason, with its count: a reason cannot be added to one only.
    #[test]
    fn every_loss_is_in_the_exit_report_and_the_metrics_text() {
        let metrics = Metrics::default();
        for loss in Loss::ALL {
            metrics.lost(loss, 100 + loss.index() as u64);
        }
        let report = report::lines(&metrics);
        let text = prometheus::render(&metrics);
        for loss in Loss::ALL {
            let count = 100 + loss.index();
            let field = format!(" {}={count}", loss.label());
            assert!(report.contains(&field), "{field} not in {report}");
            let sample = format!(
                "spanprobe_spans_dropped_total{{reason=\"{}\"}} {count}\n",
                loss.label()
            );
            assert!(text.contains(&sample), "{sample} not in {text}");
        }
        assert_eq!(
            text.matches("spanprobe_spans_dropped_total{").count(),
            Loss::COUNT
        );
    }
}
