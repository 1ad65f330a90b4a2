//! Why calls produced no exported span: every reason, named once, with where along the call's
//! path it happens. The ledger ([`crate::metrics`]) keeps a count per reason; its two readouts,
//! the Prometheus text and the exit report, list them all from here, by the same names.
//!
//! A leaf: it depends on no stage, so every stage can name its losses without depending on
//! another.

/// Declares [`Loss`] and [`Loss::ALL`] from one list, so that no reason can be left out of
/// the table both readouts walk (the matches below then ask for its name and stage).
macro_rules! losses {
    ($($(#[$doc:meta])* $loss:ident,)+) => {
        /// A reason a call produced no exported span. Its discriminant is its slot in
        /// [`Loss::ALL`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Loss {
            $($(#[$doc])* $loss,)+
        }

        impl Loss {
            /// Every reason, in slot order: the order of the exit report and of the metric's
            /// samples.
            pub const ALL: [Loss; [$(Loss::$loss),+].len()] = [$(Loss::$loss),+];
        }
    };
}

losses! {
    /// The ring buffer was full when the call completed.
    RingBufferFull,
    /// Nested deeper than `limits.max_depth`.
    DepthExceeded,
    /// The thread's call stack could not be created.
    NoThreadStack,
    /// The call's captured memory was lost before it returned.
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

/// Where along a call's path a loss happens, which says who counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// In the kernel programs, which count into their per-CPU counters; userspace copies them.
    Kernel,
    /// Between the ring buffer and the span: the record never became one.
    Pipeline,
    /// After the span was made: the queue and the exporter. The exit report's `dropped`.
    Export,
}

impl Loss {
    /// How many reasons there are: the size of every per-reason array.
    pub const COUNT: usize = Self::ALL.len();

    /// The Prometheus counter every reason is a sample of, told apart by a `reason` label
    /// (without the `spanprobe_` prefix every metric has).
    pub const METRIC: &'static str = "spans_dropped_total";
    /// That counter's `# HELP` text.
    pub const METRIC_HELP: &'static str = "Calls that produced no exported span, by reason.";

    /// Its name: the exit report's `name=count` and the metric's `reason` label, the same so
    /// that a loss seen in one is found in the other.
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

    /// Where it happens.
    pub fn stage(self) -> Stage {
        match self {
            Self::RingBufferFull | Self::DepthExceeded | Self::NoThreadStack | Self::MemoryLost => {
                Stage::Kernel
            }
            Self::Undecodable | Self::UnknownFunction => Stage::Pipeline,
            Self::QueueFull | Self::ExportFailed | Self::ShutdownDeadline => Stage::Export,
        }
    }

    /// Its slot in [`Loss::ALL`] (and in every per-reason array).
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn each_reason_is_in_its_own_slot() {
        for (slot, loss) in Loss::ALL.into_iter().enumerate() {
            assert_eq!(loss.index(), slot, "{loss:?}");
        }
    }

    #[test]
    fn labels_are_distinct_metric_label_values() {
        let labels: HashSet<_> = Loss::ALL.into_iter().map(Loss::label).collect();
        assert_eq!(labels.len(), Loss::COUNT);
        for label in labels {
            assert!(
                !label.is_empty() && label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label} is a plain name, needing no quoting in a log field"
            );
        }
    }

    #[test]
    fn the_export_stage_is_what_was_made_but_not_sent() {
        let export: Vec<_> = Loss::ALL
            .into_iter()
            .filter(|loss| loss.stage() == Stage::Export)
            .collect();
        assert_eq!(
            export,
            [Loss::QueueFull, Loss::ExportFailed, Loss::ShutdownDeadline]
        );
    }
}
