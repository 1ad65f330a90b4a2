//! The per-function summary printed at exit, as bpftrace prints its maps: calls, spans
//! exported, and duration percentiles.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use opentelemetry_sdk::trace::SpanData;

/// Durations kept per span name for percentiles; past this, a reservoir sample.
const SAMPLES: usize = 100_000;

/// Calls and durations per span name.
#[derive(Debug, Default)]
pub struct Summary {
    by_name: BTreeMap<String, Calls>,
}

#[derive(Debug, Default)]
struct Calls {
    count: u64,
    durations_ns: Vec<u64>,
}

impl Summary {
    /// Counts one call, with its span.
    pub fn record(&mut self, span: &SpanData) {
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        // Looked up by reference first: a name is allocated once, not once per call.
        let calls = match self.by_name.get_mut(span.name.as_ref()) {
            Some(calls) => calls,
            None => self.by_name.entry(span.name.to_string()).or_default(),
        };
        calls.count += 1;
        if calls.durations_ns.len() < SAMPLES {
            calls.durations_ns.push(ns);
        } else {
            // Reservoir sampling: every call stays equally likely to be in the sample.
            let slot = (rand::random::<u64>() % calls.count) as usize;
            if let Some(kept) = calls.durations_ns.get_mut(slot) {
                *kept = ns;
            }
        }
    }

    /// The table: one row per span name, with `exported` spans per name.
    pub fn table(&mut self, exported: &BTreeMap<String, u64>) -> String {
        let mut out = format!(
            "{:<32} {:>10} {:>10} {:>12} {:>12}\n",
            "span", "calls", "exported", "p50", "p99"
        );
        for (name, calls) in &mut self.by_name {
            calls.durations_ns.sort_unstable();
            let percentile = |p: usize| {
                nearest_rank(&calls.durations_ns, p).map_or_else(
                    || "-".to_owned(),
                    |ns| format!("{:?}", Duration::from_nanos(ns)),
                )
            };
            let _ = writeln!(
                out,
                "{:<32} {:>10} {:>10} {:>12} {:>12}",
                name,
                calls.count,
                exported.get(name).copied().unwrap_or(0),
                percentile(50),
                percentile(99)
            );
        }
        out
    }
}

/// The `p`th percentile of `sorted` by the nearest-rank method: the smallest value with at
/// least `p` % of the values at or below it (the p50 of two calls is the shorter).
fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use crate::test_span::test_span;

    use super::*;

    fn span(name: &str, micros: u64) -> SpanData {
        test_span(
            name,
            1,
            1,
            0,
            SystemTime::UNIX_EPOCH,
            Duration::from_micros(micros),
        )
    }

    #[test]
    fn counts_and_percentiles_per_name() {
        let mut summary = Summary::default();
        for micros in 1..=100 {
            summary.record(&span("add", micros));
        }
        summary.record(&span("inner", 7));
        let exported = [("add".to_owned(), 98)].into();
        let table = summary.table(&exported);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(rows[0], ["span", "calls", "exported", "p50", "p99"]);
        assert_eq!(rows[1], ["add", "100", "98", "50µs", "99µs"]);
        assert_eq!(rows[2], ["inner", "1", "0", "7µs", "7µs"]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(nearest_rank(&[10, 20], 50), Some(10));
        assert_eq!(nearest_rank(&[10, 20], 51), Some(20));
        assert_eq!(nearest_rank(&[10, 20, 30], 50), Some(20));
        assert_eq!(nearest_rank(&[10, 20, 30], 99), Some(30));
        assert_eq!(nearest_rank(&[5], 0), Some(5));
        assert_eq!(nearest_rank(&[], 50), None);
    }
}
