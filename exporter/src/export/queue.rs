//! The bounded queue between the ring-buffer reader and the exporter. The reader never waits
//! on the network: when the queue is full the newest span is dropped and counted.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use opentelemetry_sdk::{Resource, trace::SpanData};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};

use super::{Exporter, SendError};
use crate::metrics::Metrics;

/// A span and the resource of the process it came from.
#[derive(Debug)]
pub struct QueuedSpan {
    pub resource: Arc<Resource>,
    pub span: SpanData,
}

/// What happened to the spans handed to the queue.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportStats {
    /// Accepted by the exporter, per span name (for the summary).
    pub exported_by_name: std::collections::BTreeMap<String, u64>,
    /// Accepted by the exporter.
    pub exported: u64,
    /// Lost because the exporter failed (backend down, refused, timed out) or the backend
    /// rejected them (an OTLP partial success).
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Dropped because the shutdown deadline passed before they were sent.
    pub dropped_at_shutdown: u64,
    /// Export attempts that failed and were retried.
    pub retries: u64,
    /// The last attempt failed (for logging an outage once).
    pub failing: bool,
}

/// The sending side, held by the ring-buffer reader. Dropping it starts the final flush.
#[derive(Debug)]
pub struct SpanQueue {
    tx: mpsc::Sender<QueuedSpan>,
    /// When the queue was closed, so an export already retrying learns of the shutdown.
    closed: watch::Sender<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl Drop for SpanQueue {
    fn drop(&mut self) {
        self.closed.send_replace(Some(Instant::now()));
    }
}

impl SpanQueue {
    /// Queues a span without waiting; counts it as dropped if the queue is full.
    pub fn push(&self, span: QueuedSpan) {
        if self.tx.try_send(span).is_err() {
            self.metrics
                .spans_dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Export tuning.
#[derive(Debug, Clone, Copy)]
pub struct ExportSettings {
    pub queue_size: usize,
    pub batch_size: usize,
    /// How long a span may wait for its batch to fill.
    pub delay: Duration,
    /// How long the final flush may take once the queue is closed.
    pub shutdown_timeout: Duration,
}

impl ExportSettings {
    pub fn from_config(batch: &spanprobe_config::BatchConfig) -> Self {
        Self {
            queue_size: batch.queue_size,
            batch_size: batch.batch_size,
            delay: batch.delay,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The bounded queue: the sending side for the pipeline, the receiving side for
/// [`spawn_export`] (or a benchmark).
pub fn span_queue(size: usize, metrics: Arc<Metrics>) -> (SpanQueue, QueuedSpans) {
    let (tx, rx) = mpsc::channel::<QueuedSpan>(size);
    let (closed, closed_at) = watch::channel(None);
    let queue = SpanQueue {
        tx,
        closed,
        metrics,
    };
    (queue, QueuedSpans { rx, closed_at })
}

/// The receiving side of the queue.
#[derive(Debug)]
pub struct QueuedSpans {
    rx: mpsc::Receiver<QueuedSpan>,
    closed_at: watch::Receiver<Option<Instant>>,
}

impl QueuedSpans {
    /// Moves up to `limit` queued spans into `batch` without waiting; returns how many.
    pub fn take_ready(&mut self, batch: &mut Vec<QueuedSpan>, limit: usize) -> usize {
        let before = batch.len();
        while batch.len() - before < limit {
            match self.rx.try_recv() {
                Ok(span) => batch.push(span),
                Err(_) => break,
            }
        }
        batch.len() - before
    }
}

/// Starts the export task on `queued`. It ends, returning its counts, once every
/// [`SpanQueue`] is dropped and the queue is flushed (or the shutdown deadline passed).
pub fn spawn_export(
    mut exporter: Exporter,
    queued: QueuedSpans,
    settings: ExportSettings,
    metrics: Arc<Metrics>,
) -> JoinHandle<ExportStats> {
    let QueuedSpans { mut rx, closed_at } = queued;
    let mut shutdown = Shutdown {
        closed_at,
        timeout: settings.shutdown_timeout,
    };
    tokio::spawn(async move {
        let mut stats = ExportStats::default();
        let mut received = Vec::with_capacity(settings.batch_size);
        loop {
            if rx.recv_many(&mut received, settings.batch_size).await == 0 {
                break;
            }
            // Give the batch up to `delay` to fill, unless the queue is closing.
            let fill_until = Instant::now() + settings.delay;
            while received.len() < settings.batch_size && !rx.is_closed() {
                let room = settings.batch_size - received.len();
                match tokio::time::timeout_at(fill_until, rx.recv_many(&mut received, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            metrics
                .queue_depth
                .store(rx.len() as u64, Ordering::Relaxed);
            export_batch(&mut exporter, &mut received, &mut shutdown, &mut stats).await;
            metrics
                .spans_exported
                .store(stats.exported, Ordering::Relaxed);
            metrics
                .spans_dropped_export_failed
                .store(stats.failed, Ordering::Relaxed);
            metrics
                .export_retries
                .store(stats.retries, Ordering::Relaxed);
        }
        stats.dropped_queue_full = metrics.spans_dropped_queue_full.load(Ordering::Relaxed);
        stats
    })
}

/// First wait before retrying a failed export; doubled on each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A batch still failing after this long is given up and counted as failed.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Exports `received` (emptying it) as one request. Failures are retried with exponential
/// backoff; meanwhile the queue fills, and spans beyond it are dropped and counted by
/// [`SpanQueue::push`], never waited for.
async fn export_batch(
    exporter: &mut Exporter,
    received: &mut Vec<QueuedSpan>,
    shutdown: &mut Shutdown,
    stats: &mut ExportStats,
) {
    let count = received.len() as u64;
    let body = exporter.encode(received);
    match send(exporter, body, shutdown, stats).await {
        Ok(rejected) => {
            stats.exported += count - rejected;
            stats.failed += rejected;
            for queued in received.iter() {
                let name = queued.span.name.as_ref();
                match stats.exported_by_name.get_mut(name) {
                    Some(exported) => *exported += 1,
                    None => {
                        stats.exported_by_name.insert(name.to_owned(), 1);
                    }
                }
            }
        }
        Err(Unsent::Deadline) => stats.dropped_at_shutdown += count,
        Err(Unsent::Failed(error)) => {
            stats.failed += count;
            tracing::warn!(%error, spans = count, "export failed; giving up on these spans");
        }
    }
    received.clear();
}

enum Unsent {
    /// The shutdown deadline passed.
    Deadline,
    Failed(SendError),
}

/// The final flush's deadline: `timeout` after the reader closed the queue.
struct Shutdown {
    closed_at: watch::Receiver<Option<Instant>>,
    timeout: Duration,
}

impl Shutdown {
    fn deadline(&self) -> Option<Instant> {
        self.closed_at.borrow().map(|at| at + self.timeout)
    }

    /// The earlier of `give_up` and the shutdown deadline.
    fn until(&self, give_up: Instant) -> Instant {
        self.deadline()
            .map_or(give_up, |deadline| deadline.min(give_up))
    }

    /// Runs `work` until it is done or [`Self::until`] passes (`None`). A shutdown starting
    /// meanwhile brings the end forward instead of waiting out `give_up`.
    async fn bounded<F: Future>(&mut self, give_up: Instant, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            let until = self.until(give_up);
            if self.deadline().is_some() {
                return tokio::time::timeout_at(until, &mut work).await.ok();
            }
            tokio::select! {
                done = tokio::time::timeout_at(until, &mut work) => return done.ok(),
                changed = self.closed_at.changed() => {
                    if changed.is_err() {
                        // The queue is gone without saying when: bound by what is known.
                        return tokio::time::timeout_at(until, &mut work).await.ok();
                    }
                }
            }
        }
    }

    /// Why a batch that ran out of time is lost: the shutdown deadline, or giving up.
    fn out_of_time(&self, give_up: Instant, error: SendError) -> Unsent {
        if self.deadline().is_some_and(|deadline| deadline <= give_up) {
            Unsent::Deadline
        } else {
            Unsent::Failed(error)
        }
    }
}

/// One request, retried until it is accepted, fails for good, [`GIVE_UP_AFTER`] passes, or
/// the shutdown deadline. Returns how many spans the backend rejected in an accepted request.
async fn send(
    exporter: &mut Exporter,
    body: Bytes,
    shutdown: &mut Shutdown,
    stats: &mut ExportStats,
) -> Result<u64, Unsent> {
    let give_up = Instant::now() + GIVE_UP_AFTER;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = exporter.send(body.clone());
        let error = match shutdown.bounded(give_up, attempt).await {
            Some(Ok(accepted)) => {
                if std::mem::take(&mut stats.failing) {
                    tracing::info!("export recovered");
                }
                if accepted.rejected > 0 {
                    tracing::warn!(
                        spans = accepted.rejected,
                        message = accepted.message,
                        "the backend rejected spans of an accepted request"
                    );
                }
                return Ok(accepted.rejected);
            }
            Some(Err(error)) => error,
            None => {
                let error = SendError::Timeout(GIVE_UP_AFTER);
                return Err(shutdown.out_of_time(give_up, error));
            }
        };
        if !error.is_retryable() {
            return Err(Unsent::Failed(error));
        }
        if !std::mem::replace(&mut stats.failing, true) {
            // Once per outage, not once per attempt.
            tracing::warn!(%error, "export failed; retrying with backoff");
        }
        stats.retries += 1;
        let wait = error
            .retry_after()
            .map_or(backoff, |asked| asked.max(backoff));
        let retry_at = Instant::now() + wait;
        if retry_at >= shutdown.until(give_up)
            || shutdown
                .bounded(give_up, tokio::time::sleep_until(retry_at))
                .await
                .is_none()
        {
            return Err(shutdown.out_of_time(give_up, error));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
