//! The report at exit, read from the ledger once every stage has finished: a line of totals
//! and, if anything was lost, a line naming every reason with its count, as the metrics label
//! them. Scripts read these fields (scripts/bench.sh), so their names stay.

use super::{HandoffOutcome, Metrics, get};
use crate::loss::{Loss, Stage};

/// Logs the totals on stderr, and the losses by reason when there were any.
pub fn log(metrics: &Metrics) {
    let lost = metrics.lost_total();
    tracing::info!(
        events = get(&metrics.events_read),
        exported = get(&metrics.spans_exported),
        // Spans made but not exported.
        dropped = metrics.lost_at(Stage::Export),
        below_min_duration = get(&metrics.below_min_duration),
        not_failed = get(&metrics.not_failed),
        left_out_at_return = get(&metrics.left_out_at_return),
        filtered_by_when = get(&metrics.filtered_by_when),
        dropped_events = get(&metrics.dropped_events),
        lost,
        invalid_trace_context = get(&metrics.invalid_trace_contexts),
        "done"
    );
    let [made, taken, missing] = HandoffOutcome::ALL.map(|outcome| metrics.handoffs(outcome));
    if made + taken + missing > 0 {
        // Made and never taken: the `to` never came, the key was evicted, or another `from`
        // replaced it.
        tracing::info!(
            made,
            taken,
            missing,
            "handoffs: {made} spans handed off, {taken} taken, {missing} `to` calls found none"
        );
    }
    let windows_lost = get(&metrics.stack_windows_lost);
    if windows_lost > 0 {
        tracing::warn!(
            stack_windows_lost = windows_lost,
            "{windows_lost} spans were sent without their stacks: the ring buffer had no room \
             for the stack copies (a larger limits.ring_buffer_size, or smaller stack bytes)"
        );
    }
    let execs_lost = get(&metrics.execs_lost);
    if execs_lost > 0 {
        tracing::warn!(
            execs_lost,
            "{execs_lost} programs started while the ring buffer was full: a new file of an \
             `executable:` target among them was not probed (a larger limits.ring_buffer_size)"
        );
    }
    if lost > 0 {
        let by_reason: String = Loss::ALL
            .into_iter()
            .map(|loss| format!(" {}={}", loss.label(), metrics.lost_to(loss)))
            .collect();
        tracing::warn!(
            returns_without_entry = get(&metrics.returns_without_entry),
            export_retries = get(&metrics.export_retries),
            "{lost} calls were not exported:{by_reason}"
        );
    }
}

/// The lines [`log`] writes, formatted as `main` sets the log up (without the time).
#[cfg(test)]
pub(super) fn lines(metrics: &Metrics) -> String {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, || log(metrics));
    let bytes = captured.0.lock().expect("not poisoned").clone();
    String::from_utf8(bytes).expect("logs are text")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use spanprobe_common::Counter;

    use super::*;

    #[test]
    fn totals_and_every_loss_by_reason() {
        let metrics = Metrics::default();
        metrics.events_read.store(100, Ordering::Relaxed);
        metrics.spans_exported.store(40, Ordering::Relaxed);
        metrics.below_min_duration.store(9, Ordering::Relaxed);
        metrics.dropped_events.store(11, Ordering::Relaxed);
        metrics.export_retries.store(12, Ordering::Relaxed);
        metrics.set_kernel(Counter::InvalidTraceContext, 5);
        metrics.set_kernel(Counter::ReturnWithoutEntry, 1000);
        metrics.set_kernel(Counter::DepthExceeded, 6);
        metrics.lost(Loss::UnknownFunction, 2);
        metrics.lost(Loss::QueueFull, 3);
        metrics.lost(Loss::ExportFailed, 4);
        assert_eq!(
            lines(&metrics),
            " INFO done events=100 exported=40 dropped=7 below_min_duration=9 not_failed=0 left_out_at_return=0 filtered_by_when=0 dropped_events=11 \
             lost=15 invalid_trace_context=5\n \
             WARN 15 calls were not exported: ring_buffer_full=0 depth_exceeded=6 \
             no_thread_stack=0 memory_lost=0 undecodable=0 unknown_function=2 queue_full=3 \
             export_failed=4 shutdown_deadline=0 returns_without_entry=1000 export_retries=12\n"
        );
    }

    #[test]
    fn nothing_lost_is_one_line() {
        let metrics = Metrics::default();
        metrics.events_read.store(3, Ordering::Relaxed);
        metrics.spans_exported.store(3, Ordering::Relaxed);
        // Neither is a loss.
        metrics.below_min_duration.store(1, Ordering::Relaxed);
        metrics.dropped_events.store(2, Ordering::Relaxed);
        assert_eq!(
            lines(&metrics),
            " INFO done events=3 exported=3 dropped=0 below_min_duration=1 not_failed=0 left_out_at_return=0 filtered_by_when=0 dropped_events=2 \
             lost=0 invalid_trace_context=0\n"
        );
    }
}
