//! The bounded queue between the ring-buffer reader and the exporter. The reader never waits
//! on the network: when the queue is full the newest span is dropped and counted.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use opentelemetry_sdk::{Resource, trace::SpanData};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};

use super::{Accepted, SendError};
use crate::{loss::Loss, metrics::Metrics};

/// Where the export task sends batches: the seam between the queue (batching, retries,
/// deadlines, loss counting) and a destination. [`super::Exporter`] is the real one.
pub trait Sink: Send + Sync + 'static {
    /// One request's body for `spans`.
    fn encode(&self, spans: &[QueuedSpan]) -> Bytes;
    /// Sends a body [`Self::encode`] made.
    fn send(&self, body: Bytes) -> impl Future<Output = Result<Accepted, SendError>> + Send;
}

/// A span and the resource of the process it came from.
#[derive(Debug)]
pub struct QueuedSpan {
    pub resource: Arc<Resource>,
    /// Boxed: a `SpanData` is some 400 bytes, moved into the queue, out of it and into a
    /// batch; copying those was a sixth of the pipeline's time per span.
    pub span: Box<SpanData>,
}

impl QueuedSpan {
    pub fn new(resource: Arc<Resource>, span: SpanData) -> Self {
        Self {
            resource,
            span: Box::new(span),
        }
    }
}

/// Spans the exporter accepted, per span name, for the summary at exit; every other count of
/// the export is in [`Metrics`]. A partial success does not say which spans it rejected: they
/// count here, and as [`Loss::ExportFailed`].
pub type ExportedByName = BTreeMap<String, u64>;

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
            self.metrics.lost(Loss::QueueFull, 1);
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
        take_ready(&mut self.rx, batch, limit)
    }
}

fn take_ready(
    rx: &mut mpsc::Receiver<QueuedSpan>,
    batch: &mut Vec<QueuedSpan>,
    limit: usize,
) -> usize {
    let before = batch.len();
    while batch.len() - before < limit {
        match rx.try_recv() {
            Ok(span) => batch.push(span),
            Err(_) => break,
        }
    }
    batch.len() - before
}

/// First wait before retrying a failed export; doubled on each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A batch still failing after this long is given up and counted as failed.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Export requests sent at once. One at a time, a request's round trip (the backend decoding
/// it included) caps the rate at one batch per round trip; a few in flight keep the
/// connection busy while the backend works, as a collector's exporters do.
const MAX_IN_FLIGHT: usize = 4;

/// Starts the export task on `queued`, counting into `metrics` as it goes. It ends, returning
/// the spans exported per name, once every [`SpanQueue`] is dropped and the queue is flushed
/// (or the shutdown deadline passed).
pub fn spawn_export<S: Sink>(
    exporter: S,
    queued: QueuedSpans,
    settings: ExportSettings,
    metrics: Arc<Metrics>,
) -> JoinHandle<ExportedByName> {
    let QueuedSpans { mut rx, closed_at } = queued;
    let shutdown = Shutdown {
        closed_at,
        timeout: settings.shutdown_timeout,
    };
    tokio::spawn(async move {
        let mut exported = ExportedByName::new();
        let failing = AtomicBool::new(false);
        let mut in_flight = FuturesUnordered::new();
        let mut filling = Filling {
            spans: Vec::with_capacity(settings.batch_size),
            until: None,
        };
        let mut open = true;
        while open || !in_flight.is_empty() {
            tokio::select! {
                filled = filling.fill(&mut rx, &settings),
                    if open && in_flight.len() < MAX_IN_FLIGHT =>
                {
                    if !filled {
                        open = false;
                        continue;
                    }
                    metrics
                        .queue_depth
                        .store(rx.len() as u64, Ordering::Relaxed);
                    if shutdown.deadline().is_some_and(|deadline| Instant::now() >= deadline) {
                        // Too late to send: count what is left instead of encoding it.
                        metrics.lost(Loss::ShutdownDeadline, filling.spans.len() as u64);
                        filling.clear();
                        continue;
                    }
                    let batch = Batch::new(&exporter, &filling.spans);
                    filling.clear();
                    in_flight.push(send(&exporter, batch, shutdown.clone(), &failing));
                }
                Some(sent) = in_flight.next() => sent.count(&metrics, &mut exported),
            }
        }
        exported
    })
}

/// How often a filling batch takes what has arrived. Waiting on the queue itself would wake
/// the export task, a context switch, for every span the reader queues.
const FILL_POLL: Duration = Duration::from_millis(5);

/// The batch being filled. It lives across calls of [`Filling::fill`], so that cancelling
/// one (a request in flight completed first) loses no span and does not restart the delay.
struct Filling {
    spans: Vec<QueuedSpan>,
    /// When the batch stops waiting for more: `delay` after its first span arrived.
    until: Option<Instant>,
}

impl Filling {
    /// Waits for spans and gives the batch up to `delay` to fill, unless the queue is
    /// closing. Returns false once the queue is closed and empty.
    async fn fill(
        &mut self,
        rx: &mut mpsc::Receiver<QueuedSpan>,
        settings: &ExportSettings,
    ) -> bool {
        if self.spans.is_empty() && rx.recv_many(&mut self.spans, settings.batch_size).await == 0 {
            return false;
        }
        let until = *self
            .until
            .get_or_insert_with(|| Instant::now() + settings.delay);
        loop {
            let room = settings.batch_size.saturating_sub(self.spans.len());
            take_ready(rx, &mut self.spans, room);
            let now = Instant::now();
            if self.spans.len() >= settings.batch_size || rx.is_closed() || now >= until {
                return true;
            }
            tokio::time::sleep_until((now + FILL_POLL).min(until)).await;
        }
    }

    /// Empties the batch once it is sent (or counted).
    fn clear(&mut self) {
        self.spans.clear();
        self.until = None;
    }
}

/// One export request: its encoded body and what it holds.
struct Batch {
    body: Bytes,
    spans: u64,
    /// Spans per name, for the summary.
    names: Vec<(Cow<'static, str>, u64)>,
}

impl Batch {
    fn new(exporter: &impl Sink, spans: &[QueuedSpan]) -> Self {
        let mut names: Vec<(Cow<'static, str>, u64)> = Vec::new();
        for queued in spans {
            let name = &queued.span.name;
            match names.iter_mut().find(|(known, _)| known == name) {
                Some((_, count)) => *count += 1,
                None => names.push((name.clone(), 1)),
            }
        }
        Self {
            body: exporter.encode(spans),
            spans: spans.len() as u64,
            names,
        }
    }
}

/// How one request ended.
struct Sent {
    spans: u64,
    names: Vec<(Cow<'static, str>, u64)>,
    retries: u64,
    /// Spans the backend rejected in an accepted request, or why nothing was accepted.
    result: Result<u64, Unsent>,
}

impl Sent {
    /// Counts the request's spans as exported or lost, and its retries, into `metrics`; the
    /// exported ones also per name.
    fn count(self, metrics: &Metrics, by_name: &mut ExportedByName) {
        metrics
            .export_retries
            .fetch_add(self.retries, Ordering::Relaxed);
        match self.result {
            Ok(rejected) => {
                metrics
                    .spans_exported
                    .fetch_add(self.spans - rejected, Ordering::Relaxed);
                metrics.lost(Loss::ExportFailed, rejected);
                for (name, count) in self.names {
                    match by_name.get_mut(name.as_ref()) {
                        Some(exported) => *exported += count,
                        None => {
                            by_name.insert(name.into_owned(), count);
                        }
                    }
                }
            }
            Err(Unsent::Deadline) => metrics.lost(Loss::ShutdownDeadline, self.spans),
            Err(Unsent::Failed(error)) => {
                metrics.lost(Loss::ExportFailed, self.spans);
                tracing::warn!(%error, spans = self.spans, "export failed; giving up on these spans");
            }
        }
    }
}

enum Unsent {
    /// The shutdown deadline passed.
    Deadline,
    Failed(SendError),
}

/// The final flush's deadline: `timeout` after the reader closed the queue.
#[derive(Clone)]
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
/// the shutdown deadline. `failing` is shared by the requests in flight, so that an outage is
/// logged once.
async fn send(
    exporter: &impl Sink,
    batch: Batch,
    mut shutdown: Shutdown,
    failing: &AtomicBool,
) -> Sent {
    let Batch { body, spans, names } = batch;
    let give_up = Instant::now() + GIVE_UP_AFTER;
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0;
    let result = loop {
        let attempt = exporter.send(body.clone());
        let error = match shutdown.bounded(give_up, attempt).await {
            Some(Ok(accepted)) => {
                if failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("export recovered");
                }
                let rejected = accepted.rejected_of(spans);
                if rejected > 0 {
                    tracing::warn!(
                        spans = rejected,
                        reason = accepted.message,
                        "the backend rejected spans of an accepted request"
                    );
                } else if !accepted.message.is_empty() {
                    tracing::warn!(
                        reason = accepted.message,
                        "the backend accepted with a warning"
                    );
                }
                break Ok(rejected);
            }
            Some(Err(error)) => error,
            None => {
                let error = SendError::Timeout(GIVE_UP_AFTER);
                break Err(shutdown.out_of_time(give_up, error));
            }
        };
        if !error.is_retryable() {
            break Err(Unsent::Failed(error));
        }
        if !failing.swap(true, Ordering::Relaxed) {
            // Once per outage, not once per attempt.
            tracing::warn!(%error, "export failed; retrying with backoff");
        }
        retries += 1;
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
            break Err(shutdown.out_of_time(give_up, error));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    Sent {
        spans,
        names,
        retries,
        result,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        sync::Mutex,
        time::{Duration, SystemTime},
    };

    use super::*;
    use crate::test_span::test_span;

    /// What the scripted backend answers to one request.
    #[derive(Clone, Copy)]
    enum Answer {
        /// Accepted, with this many spans rejected (an OTLP partial success).
        Accept(u64),
        /// An HTTP status, with a `Retry-After` if given.
        Status(u16, Option<Duration>),
    }

    /// A backend answering from a script (then with its last answer), remembering when each
    /// request came.
    #[derive(Clone, Default)]
    struct Scripted {
        answers: Arc<Mutex<VecDeque<Answer>>>,
        attempts: Arc<Mutex<Vec<Instant>>>,
    }

    impl Scripted {
        fn new(answers: &[Answer]) -> Self {
            Self {
                answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
                ..Self::default()
            }
        }

        /// The waits between consecutive requests.
        fn gaps(&self) -> Vec<Duration> {
            let attempts = self.attempts.lock().unwrap();
            attempts.windows(2).map(|w| w[1] - w[0]).collect()
        }
    }

    impl Sink for Scripted {
        fn encode(&self, spans: &[QueuedSpan]) -> Bytes {
            Bytes::from(spans.len().to_string())
        }

        fn send(&self, _body: Bytes) -> impl Future<Output = Result<Accepted, SendError>> + Send {
            self.attempts.lock().unwrap().push(Instant::now());
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.pop_front()
            } else {
                answers.front().copied()
            };
            let result = match answer.unwrap_or(Answer::Accept(0)) {
                Answer::Accept(rejected) => Ok(Accepted {
                    rejected,
                    message: String::new(),
                }),
                Answer::Status(status, retry_after) => Err(SendError::HttpStatus {
                    status: reqwest::StatusCode::from_u16(status).unwrap(),
                    body: String::new(),
                    retry_after,
                }),
            };
            std::future::ready(result)
        }
    }

    fn span() -> QueuedSpan {
        QueuedSpan::new(
            Arc::new(Resource::builder_empty().build()),
            test_span("f", 1, 1, 0, SystemTime::UNIX_EPOCH, Duration::ZERO),
        )
    }

    const SETTINGS: ExportSettings = ExportSettings {
        queue_size: 64,
        batch_size: 512,
        delay: Duration::from_millis(10),
        shutdown_timeout: Duration::from_secs(10),
    };

    /// What the ledger says of an export.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Counted {
        exported: u64,
        retries: u64,
        failed: u64,
        queue_full: u64,
        shutdown_deadline: u64,
    }

    impl Counted {
        fn of(metrics: &Metrics) -> Self {
            Self {
                exported: metrics.spans_exported.load(Ordering::Relaxed),
                retries: metrics.export_retries.load(Ordering::Relaxed),
                failed: metrics.lost_to(Loss::ExportFailed),
                queue_full: metrics.lost_to(Loss::QueueFull),
                shutdown_deadline: metrics.lost_to(Loss::ShutdownDeadline),
            }
        }
    }

    /// Queues `spans` spans (in a queue of `settings.queue_size`), closes the queue, and
    /// exports to `sink`: the spans exported per name, the counts, and how long it took.
    async fn export(
        sink: &Scripted,
        spans: usize,
        settings: ExportSettings,
    ) -> (ExportedByName, Counted, Duration) {
        let metrics = Arc::new(Metrics::default());
        let (queue, queued) = span_queue(settings.queue_size, Arc::clone(&metrics));
        for _ in 0..spans {
            queue.push(span());
        }
        drop(queue);
        let started = Instant::now();
        let exported = spawn_export(sink.clone(), queued, settings, Arc::clone(&metrics))
            .await
            .unwrap();
        (exported, Counted::of(&metrics), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_doubling_backoff_until_accepted() {
        let unavailable = Answer::Status(503, None);
        let sink = Scripted::new(&[unavailable, unavailable, unavailable, Answer::Accept(0)]);
        let (_, counted, _) = export(&sink, 5, SETTINGS).await;
        let expected = Counted {
            exported: 5,
            retries: 3,
            ..Counted::default()
        };
        assert_eq!(counted, expected);
        assert_eq!(
            sink.gaps(),
            [100, 200, 400].map(Duration::from_millis).to_vec()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_as_long_as_the_backend_asks() {
        let sink = Scripted::new(&[
            Answer::Status(429, Some(Duration::from_secs(2))),
            Answer::Accept(0),
        ]);
        let (_, counted, _) = export(&sink, 1, SETTINGS).await;
        let expected = Counted {
            exported: 1,
            retries: 1,
            ..Counted::default()
        };
        assert_eq!(counted, expected);
        assert_eq!(sink.gaps(), [Duration::from_secs(2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_is_counted_failed_and_not_sent_again() {
        let sink = Scripted::new(&[Answer::Status(400, None)]);
        let (exported, counted, _) = export(&sink, 5, SETTINGS).await;
        let expected = Counted {
            failed: 5,
            ..Counted::default()
        };
        assert_eq!(counted, expected);
        assert_eq!(exported, ExportedByName::new());
        assert_eq!(sink.attempts.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn spans_rejected_in_an_accepted_request_are_failed() {
        let sink = Scripted::new(&[Answer::Accept(2)]);
        let (exported, counted, _) = export(&sink, 5, SETTINGS).await;
        let expected = Counted {
            exported: 3,
            failed: 2,
            ..Counted::default()
        };
        assert_eq!(counted, expected);
        assert_eq!(exported.get("f"), Some(&5));
    }

    /// A backend that stays down is retried until the shutdown deadline, not for the minute
    /// a batch is otherwise given; what it held is counted as lost at shutdown.
    #[tokio::test(start_paused = true)]
    async fn the_shutdown_deadline_bounds_a_failing_export() {
        let sink = Scripted::new(&[Answer::Status(503, None)]);
        let settings = ExportSettings {
            shutdown_timeout: Duration::from_secs(1),
            ..SETTINGS
        };
        let (_, counted, took) = export(&sink, 5, settings).await;
        assert_eq!((counted.exported, counted.shutdown_deadline), (0, 5));
        assert!(took <= Duration::from_secs(1), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_and_counts_the_newest_spans() {
        let sink = Scripted::new(&[Answer::Accept(0)]);
        let settings = ExportSettings {
            queue_size: 2,
            ..SETTINGS
        };
        let (exported, counted, _) = export(&sink, 5, settings).await;
        let expected = Counted {
            exported: 2,
            queue_full: 3,
            ..Counted::default()
        };
        assert_eq!(counted, expected);
        assert_eq!(exported.get("f"), Some(&2));
    }
}
