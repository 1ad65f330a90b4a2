//! Where spans go: the terminal or an OTLP endpoint, behind one type, fed by a bounded queue.
//! A batch is encoded once, into the bytes one request carries, so a retry resends those.

mod otlp;
mod protobuf;
mod queue;
mod stdout;
mod tls;

use std::path::Path;

use bytes::Bytes;
use spanprobe_config::ExporterConfig;

pub use otlp::{Accepted, OtlpClient, OtlpError, SendError, endpoint_tls};
pub use protobuf::encode_request;
pub use queue::{
    ExportSettings, ExportedByName, QueuedSpan, QueuedSpans, Sink, SpanQueue, span_queue,
    spawn_export,
};
pub use stdout::{LineExporter, OutputError};
pub use tls::{Tls, TlsError};

/// Why the configured exporter cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// The configured span destination.
#[derive(Debug)]
pub enum Exporter {
    Stdout(LineExporter),
    // Boxed: it is far larger than the line exporter.
    Otlp(Box<OtlpClient>),
}

impl Sink for Exporter {
    fn encode(&self, spans: &[QueuedSpan]) -> Bytes {
        Exporter::encode(self, spans)
    }

    fn send(&self, body: Bytes) -> impl Future<Output = Result<Accepted, SendError>> + Send {
        Exporter::send(self, body)
    }
}

impl Exporter {
    /// Builds the exporter `config` asks for, with files (a CA, the lines' file) relative to
    /// `base_dir`. Needs a tokio runtime (the gRPC channel is created here, connecting lazily).
    pub fn from_config(config: &ExporterConfig, base_dir: &Path) -> Result<Self, ExporterError> {
        Ok(match config {
            ExporterConfig::Stdout(stdout) => {
                let file = stdout.file.as_ref().map(|file| base_dir.join(&file.value));
                Self::Stdout(LineExporter::to(stdout.format, file.as_deref())?)
            }
            ExporterConfig::Otlp(otlp) => Self::Otlp(Box::new(OtlpClient::new(otlp, base_dir)?)),
        })
    }

    /// Tracing has started: a span file is emptied of the previous capture only now, so that
    /// a run that fails to start leaves it untouched.
    pub fn start(&mut self) -> Result<(), ExporterError> {
        match self {
            Self::Stdout(exporter) => Ok(exporter.start()?),
            Self::Otlp(_) => Ok(()),
        }
    }

    /// One request's body for `spans`: an OTLP `ExportTraceServiceRequest`, or lines of text.
    pub fn encode(&self, spans: &[QueuedSpan]) -> Bytes {
        match self {
            Self::Stdout(exporter) => exporter.encode(spans),
            Self::Otlp(client) => {
                let mut body = Vec::with_capacity(spans.len() * ENCODED_SPAN_SIZE_HINT);
                encode_request(spans, &mut body);
                client.body(body)
            }
        }
    }

    /// Sends a body [`Self::encode`] made.
    pub async fn send(&self, body: Bytes) -> Result<Accepted, SendError> {
        match self {
            Self::Stdout(exporter) => exporter
                .write(&body)
                .map(|()| Accepted::default())
                .map_err(SendError::from),
            Self::Otlp(client) => client.send(body).await,
        }
    }
}

/// About what one span with a few attributes takes in OTLP protobuf: enough that a batch's
/// buffer seldom grows.
const ENCODED_SPAN_SIZE_HINT: usize = 256;
