//! spanprobe's own metrics, in the Prometheus text format, on an optional listen address.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use spanprobe_common::Counter;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use crate::{probe::bpf::KernelCounters, spans::losses::Loss};

/// Counters and gauges, updated by the stages and read by scrapes.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_read: AtomicU64,
    pub spans_exported: AtomicU64,
    /// Calls that produced no exported span, indexed as [`Loss::ALL`].
    losses: [AtomicU64; Loss::COUNT],
    pub export_retries: AtomicU64,
    pub queue_depth: AtomicU64,
    pub incomplete_calls: AtomicU64,
    pub probes_attached: AtomicU64,
    /// Copied from the kernel side's counter periodically.
    pub returns_without_entry: AtomicU64,
    /// Copied likewise: trace context arguments that held no valid context.
    pub invalid_trace_contexts: AtomicU64,
}

impl Metrics {
    /// Counts `count` more calls lost to `loss`.
    pub fn lost(&self, loss: Loss, count: u64) {
        self.loss_slot(loss).fetch_add(count, Ordering::Relaxed);
    }

    /// Sets the calls lost to `loss` so far (for counts kept elsewhere).
    pub fn set_lost(&self, loss: Loss, count: u64) {
        self.loss_slot(loss).store(count, Ordering::Relaxed);
    }

    /// The calls lost to `loss` so far.
    pub fn lost_to(&self, loss: Loss) -> u64 {
        self.loss_slot(loss).load(Ordering::Relaxed)
    }

    fn loss_slot(&self, loss: Loss) -> &AtomicU64 {
        &self.losses[loss.index()]
    }

    /// Copies the kernel side's counters: every loss it counts, and the rest.
    pub fn set_kernel(&self, kernel: &KernelCounters) {
        for loss in Loss::ALL {
            if let Some(counter) = loss.counter() {
                self.set_lost(loss, kernel.get(counter));
            }
        }
        self.returns_without_entry
            .store(kernel.get(Counter::ReturnWithoutEntry), Ordering::Relaxed);
        self.invalid_trace_contexts
            .store(kernel.get(Counter::InvalidTraceContext), Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed);
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
            &[("", get(&self.events_read))],
        );
        metric(
            "spans_exported_total",
            "counter",
            "Spans the backend accepted.",
            &[("", get(&self.spans_exported))],
        );
        let losses: Vec<(String, u64)> = Loss::ALL
            .into_iter()
            .map(|loss| {
                (
                    format!("{{reason=\"{}\"}}", loss.label()),
                    self.lost_to(loss),
                )
            })
            .collect();
        let losses: Vec<(&str, u64)> = losses.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "spans_dropped_total",
            "counter",
            "Calls that produced no exported span, by reason.",
            &losses,
        );
        metric(
            "export_retries_total",
            "counter",
            "Export attempts that failed and were retried.",
            &[("", get(&self.export_retries))],
        );
        metric(
            "returns_without_entry_total",
            "counter",
            "Returns whose entry was not recorded.",
            &[("", get(&self.returns_without_entry))],
        );
        metric(
            "invalid_trace_contexts_total",
            "counter",
            "Trace context arguments that held no valid context: those calls started new traces.",
            &[("", get(&self.invalid_trace_contexts))],
        );
        metric(
            "incomplete_calls_total",
            "counter",
            "Calls that never returned (thread exit, longjmp).",
            &[("", get(&self.incomplete_calls))],
        );
        metric(
            "queue_depth",
            "gauge",
            "Spans waiting in the export queue.",
            &[("", get(&self.queue_depth))],
        );
        metric(
            "probes_attached",
            "gauge",
            "Uprobes and uretprobes attached.",
            &[("", get(&self.probes_attached))],
        );
        out
    }
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
                let body = metrics.render();
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
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.spans_exported.store(7, Ordering::Relaxed);
        let mut kernel = KernelCounters::default();
        kernel.0[Counter::RingBufFull as usize] = 2;
        kernel.0[Counter::NoThreadStack as usize] = 3;
        metrics.set_kernel(&kernel);
        metrics.lost(Loss::QueueFull, 4);
        let text = metrics.render();
        assert!(text.contains(
            "# TYPE spanprobe_spans_exported_total counter\nspanprobe_spans_exported_total 7\n"
        ));
        assert!(text.contains("spanprobe_spans_dropped_total{reason=\"ring_buffer_full\"} 2\n"));
        assert!(text.contains("spanprobe_spans_dropped_total{reason=\"no_thread_stack\"} 3\n"));
        assert!(text.contains("spanprobe_spans_dropped_total{reason=\"queue_full\"} 4\n"));
        // Every reason, each once.
        assert_eq!(
            text.matches("spanprobe_spans_dropped_total{").count(),
            Loss::COUNT
        );
        assert!(text.contains("# TYPE spanprobe_queue_depth gauge\n"));
    }
}
