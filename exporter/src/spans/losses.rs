//! Why calls produced no exported span: one table of reasons that the exit report, the
//! Prometheus metrics and BENCHMARKS.md (through the report's log fields) all read, so that
//! every counter the kernel side keeps appears in each.

use spanprobe_common::Counter;

use crate::{export::ExportStats, probe::bpf::KernelCounters, spans::pipeline::PipelineStats};

/// A reason a call produced no exported span. Its discriminant is its slot in [`Loss::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The ring buffer was full when the call completed (kernel).
    RingBufferFull,
    /// Nested deeper than `limits.max_depth` (kernel).
    DepthExceeded,
    /// The thread's call stack could not be created (kernel).
    NoThreadStack,
    /// The call's captured memory was lost before it returned (kernel).
    MemoryLost,
    /// A record that did not decode.
    Undecodable,
    /// A record naming no configured function.
    UnknownFunction,
    /// The export queue was full.
    QueueFull,
    /// The backend failed or refused the export, or rejected the span in a partial success.
    ExportFailed,
    /// Still queued when the shutdown deadline passed.
    ShutdownDeadline,
}

impl Loss {
    pub const ALL: [Loss; 9] = [
        Loss::RingBufferFull,
        Loss::DepthExceeded,
        Loss::NoThreadStack,
        Loss::MemoryLost,
        Loss::Undecodable,
        Loss::UnknownFunction,
        Loss::QueueFull,
        Loss::ExportFailed,
        Loss::ShutdownDeadline,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Kernel counters that count no lost span (a return whose entry was never seen has no
    /// span to lose; a call with an invalid trace context is exported, in a trace of its own);
    /// every other counter is some loss's.
    pub const NOT_LOSSES: [Counter; 2] =
        [Counter::ReturnWithoutEntry, Counter::InvalidTraceContext];

    /// Its name in the exit report's fields and in the metrics' `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::RingBufferFull => "ring_buffer_full",
            Self::DepthExceeded => "depth_exceeded",
            Self::NoThreadStack => "no_thread_stack",
            Self::MemoryLost => "memory_lost",
            Self::Undecodable => "undecodable",
            Self::UnknownFunction => "unknown_function",
            Self::QueueFull => "queue_full",
            Self::ExportFailed => "export_failed",
            Self::ShutdownDeadline => "shutdown_deadline",
        }
    }

    /// The kernel-side counter that counts it, if the kernel side does.
    pub fn counter(self) -> Option<Counter> {
        match self {
            Self::RingBufferFull => Some(Counter::RingBufFull),
            Self::DepthExceeded => Some(Counter::DepthExceeded),
            Self::NoThreadStack => Some(Counter::NoThreadStack),
            Self::MemoryLost => Some(Counter::MemoryLost),
            _ => None,
        }
    }

    /// Its slot in [`Loss::ALL`] (and in every per-reason array).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How many calls each reason lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses([u64; Loss::COUNT]);

impl Losses {
    /// The losses of a whole run, from each stage's counts.
    pub fn of_run(pipeline: &PipelineStats, export: &ExportStats, kernel: &KernelCounters) -> Self {
        let mut losses = Self::default();
        for loss in Loss::ALL {
            let count = match loss.counter() {
                Some(counter) => kernel.get(counter),
                None => match loss {
                    Loss::Undecodable => pipeline.undecodable,
                    Loss::UnknownFunction => pipeline.unknown_function,
                    Loss::QueueFull => export.dropped_queue_full,
                    Loss::ExportFailed => export.failed,
                    Loss::ShutdownDeadline => export.dropped_at_shutdown,
                    _ => 0,
                },
            };
            losses.0[loss.index()] = count;
        }
        losses
    }

    pub fn get(&self, loss: Loss) -> u64 {
        self.0[loss.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Each reason with its count, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (Loss, u64)> + '_ {
        Loss::ALL.into_iter().map(|loss| (loss, self.get(loss)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_is_in_its_own_slot() {
        for (slot, loss) in Loss::ALL.into_iter().enumerate() {
            assert_eq!(loss.index(), slot, "{loss:?}");
        }
    }

    /// A counter added to the kernel side must be given a loss (or be declared none).
    #[test]
    fn every_kernel_counter_is_a_loss_or_declared_none() {
        for counter in Counter::ALL {
            let losses = Loss::ALL
                .iter()
                .filter(|loss| loss.counter() == Some(counter))
                .count();
            let declared = Loss::NOT_LOSSES.contains(&counter);
            assert_eq!(
                (losses, declared),
                if declared { (0, true) } else { (1, false) },
                "{counter:?}"
            );
        }
    }

    #[test]
    fn adds_up_a_run() {
        let pipeline = PipelineStats {
            events: 100,
            undecodable: 1,
            unknown_function: 2,
            below_min_duration: 50,
            dropped_events: 0,
        };
        let export = ExportStats {
            failed: 3,
            dropped_queue_full: 4,
            dropped_at_shutdown: 5,
            ..ExportStats::default()
        };
        let mut kernel = KernelCounters::default();
        kernel.0[Counter::RingBufFull as usize] = 6;
        kernel.0[Counter::NoThreadStack as usize] = 7;
        kernel.0[Counter::ReturnWithoutEntry as usize] = 1000;
        let losses = Losses::of_run(&pipeline, &export, &kernel);
        assert_eq!(losses.total(), 1 + 2 + 3 + 4 + 5 + 6 + 7);
        assert_eq!(losses.get(Loss::NoThreadStack), 7);
        let labels: Vec<_> = losses.iter().map(|(loss, _)| loss.label()).collect();
        assert_eq!(labels.len(), Loss::COUNT);
    }
}
