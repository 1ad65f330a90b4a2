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

use crate::bpf::KernelCounters;

/// Counters and gauges, updated by the stages and read by scrapes.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events_read: AtomicU64,
    pub spans_exported: AtomicU64,
    pub spans_dropped_queue_full: AtomicU64,
    pub spans_dropped_export_failed: AtomicU64,
    pub export_retries: AtomicU64,
    pub queue_depth: AtomicU64,
    pub incomplete_calls: AtomicU64,
    pub probes_attached: AtomicU64,
    /// Kernel-side counters, copied from the BPF map periodically.
    pub ring_buffer_full: AtomicU64,
    pub depth_exceeded: AtomicU64,
    pub memory_lost: AtomicU64,
    pub returns_without_entry: AtomicU64,
}

impl Metrics {
    /// Copies the kernel side's counters.
    pub fn set_kernel(&self, kernel: &KernelCounters) {
        let set =
            |metric: &AtomicU64, counter| metric.store(kernel.get(counter), Ordering::Relaxed);
        set(&self.ring_buffer_full, Counter::RingBufFull);
        set(&self.depth_exceeded, Counter::DepthExceeded);
        set(&self.memory_lost, Counter::MemoryLost);
        set(&self.returns_without_entry, Counter::ReturnWithoutEntry);
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
        metric(
            "spans_dropped_total",
            "counter",
            "Spans or calls lost, by reason.",
            &[
                (
                    "{reason=\"queue_full\"}",
                    get(&self.spans_dropped_queue_full),
                ),
                (
                    "{reason=\"export_failed\"}",
                    get(&self.spans_dropped_export_failed),
                ),
                ("{reason=\"ring_buffer_full\"}", get(&self.ring_buffer_full)),
                ("{reason=\"depth_exceeded\"}", get(&self.depth_exceeded)),
                ("{reason=\"memory_lost\"}", get(&self.memory_lost)),
            ],
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
        metrics.ring_buffer_full.store(2, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains(
            "# TYPE spanprobe_spans_exported_total counter\nspanprobe_spans_exported_total 7\n"
        ));
        assert!(text.contains("spanprobe_spans_dropped_total{reason=\"ring_buffer_full\"} 2\n"));
        assert!(text.contains("# TYPE spanprobe_queue_depth gauge\n"));
    }
}
