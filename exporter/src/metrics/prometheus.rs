//! The ledger in the Prometheus text format, served on an optional listen address.

use std::{fmt::Write as _, net::SocketAddr, sync::Arc};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::{HandoffOutcome, Metrics, get};
use crate::loss::Loss;

/// The exposition text.
pub fn render(metrics: &Metrics) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(
            out,
            "# HELP spanprobe_{name} {help}\n# TYPE spanprobe_{name} {kind}"
        );
        for (labels, value) in samples {
            let _ = writeln!(out, "spanprobe_{name}{labels} {value}");
        }
    };
    metric(
        "events_read_total",
        "counter",
        "Completed calls read from the ring buffer.",
        &[("", get(&metrics.events_read))],
    );
    metric(
        "spans_exported_total",
        "counter",
        "Spans the backend accepted.",
        &[("", get(&metrics.spans_exported))],
    );
    let losses = labelled(
        "reason",
        Loss::ALL.map(|loss| (loss.label(), metrics.lost_to(loss))),
    );
    metric(
        Loss::METRIC,
        "counter",
        Loss::METRIC_HELP,
        &as_samples(&losses),
    );
    metric(
        "export_retries_total",
        "counter",
        "Export attempts that failed and were retried.",
        &[("", get(&metrics.export_retries))],
    );
    metric(
        "returns_without_entry_total",
        "counter",
        "Returns whose entry was not recorded.",
        &[("", get(&metrics.returns_without_entry))],
    );
    metric(
        "invalid_trace_contexts_total",
        "counter",
        "Trace context arguments that held no valid context: those calls started new traces.",
        &[("", get(&metrics.invalid_trace_contexts))],
    );
    metric(
        "filtered_by_when_total",
        "counter",
        "Calls that did not meet their function's `when` (decided in the kernel): neither they nor their callees were traced.",
        &[("", get(&metrics.filtered_by_when))],
    );
    let kept_out = labelled(
        "rule",
        [
            ("min_duration", get(&metrics.below_min_duration)),
            ("keep_errors", get(&metrics.not_failed)),
        ],
    );
    metric(
        "left_out_by_keep_rules_total",
        "counter",
        "Spans their keep rules left out once their trace was whole (in userspace), with the spans under them: shorter than min_duration, or not failed with keep: errors.",
        &as_samples(&kept_out),
    );
    metric(
        "left_out_at_return_total",
        "counter",
        "Calls with no probed callee that their keep rules (min_duration, keep: errors) left out when they returned, in the kernel: no record was sent.",
        &[("", get(&metrics.left_out_at_return))],
    );
    metric(
        "stack_windows_lost_total",
        "counter",
        "Stack copies (unwind: dwarf) the ring buffer had no room for: their spans were sent without their stacks.",
        &[("", get(&metrics.stack_windows_lost))],
    );
    metric(
        "execs_lost_total",
        "counter",
        "Programs started while the ring buffer was full: a new file of an executable: target among them was not probed.",
        &[("", get(&metrics.execs_lost))],
    );
    metric(
        "files_attached_later_total",
        "counter",
        "Files of executable: targets probed after start, as processes started them.",
        &[("", get(&metrics.files_attached_later))],
    );
    let handoffs = labelled(
        "outcome",
        HandoffOutcome::ALL.map(|outcome| (outcome.label(), metrics.handoffs(outcome))),
    );
    metric(
        "handoffs_total",
        "counter",
        "Handoffs: spans kept at a `from` (made), adopted at a `to` (taken), and `to` calls that found none (missing).",
        &as_samples(&handoffs),
    );
    metric(
        "incomplete_calls_total",
        "counter",
        "Calls that never returned (thread exit, longjmp).",
        &[("", get(&metrics.incomplete_calls))],
    );
    metric(
        "queue_depth",
        "gauge",
        "Spans waiting in the export queue.",
        &[("", get(&metrics.queue_depth))],
    );
    metric(
        "probes_attached",
        "gauge",
        "Uprobes and uretprobes attached.",
        &[("", get(&metrics.probes_attached))],
    );
    out
}

/// Samples of one metric, one per value of label `key`: `{key="value"}` and its count.
fn labelled<const N: usize>(key: &str, values: [(&str, u64); N]) -> Vec<(String, u64)> {
    values
        .iter()
        .map(|(value, count)| (format!("{{{key}=\"{value}\"}}"), *count))
        .collect()
}

/// [`labelled`]'s samples as `render` writes them.
fn as_samples(samples: &[(String, u64)]) -> Vec<(&str, u64)> {
    samples.iter().map(|(l, v)| (l.as_str(), *v)).collect()
}

/// Serves `metrics` at `address` (any path) until the task is dropped.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                // One request per connection; its content does not matter.
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let body = render(&metrics);
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use spanprobe_common::Counter;

    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.spans_exported.store(7, Ordering::Relaxed);
        metrics.set_kernel(Counter::RingBufFull, 2);
        metrics.set_kernel(Counter::NoThreadStack, 3);
        metrics.lost(Loss::QueueFull, 4);
        let text = render(&metrics);
        assert!(text.contains(
            "# TYPE spanprobe_spans_exported_total counter\nspanprobe_spans_exported_total 7\n"
        ));
        assert!(text.contains(
            "# HELP spanprobe_spans_dropped_total Calls that produced no exported span, by reason.\n\
             # TYPE spanprobe_spans_dropped_total counter\n\
             spanprobe_spans_dropped_total{reason=\"ring_buffer_full\"} 2\n"
        ));
        assert!(text.contains("spanprobe_spans_dropped_total{reason=\"no_thread_stack\"} 3\n"));
        assert!(text.contains("spanprobe_spans_dropped_total{reason=\"queue_full\"} 4\n"));
        assert!(text.contains("# TYPE spanprobe_queue_depth gauge\n"));
    }

    /// Scrapers and dashboards know these names: none may change or go.
    #[test]
    fn names_every_metric_once() {
        let text = render(&Metrics::default());
        let types: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE spanprobe_"))
            .collect();
        assert_eq!(
            types,
            [
                "events_read_total counter",
                "spans_exported_total counter",
                "spans_dropped_total counter",
                "export_retries_total counter",
                "returns_without_entry_total counter",
                "invalid_trace_contexts_total counter",
                "filtered_by_when_total counter",
                "left_out_by_keep_rules_total counter",
                "left_out_at_return_total counter",
                "stack_windows_lost_total counter",
                "execs_lost_total counter",
                "files_attached_later_total counter",
                "handoffs_total counter",
                "incomplete_calls_total counter",
                "queue_depth gauge",
                "probes_attached gauge",
            ]
        );
    }
}
