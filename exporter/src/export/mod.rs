//! Where spans go: the terminal or an OTLP endpoint, behind one type, fed by a bounded queue.

mod otlp;
mod queue;
mod stdout;
mod tls;

use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};
use std::path::Path;

use spanprobe_config::ExporterConfig;

pub use otlp::{OtlpError, endpoint_tls, otlp_exporter};
pub use queue::{ExportSettings, ExportStats, QueuedSpan, SpanQueue, spawn_export};
pub use stdout::LineExporter;
pub use tls::{Tls, TlsError};

/// The configured span destination.
#[derive(Debug)]
pub enum Exporter {
    Stdout(LineExporter),
    // Boxed: it is far larger than the line exporter.
    Otlp(Box<opentelemetry_otlp::SpanExporter>),
}

impl Exporter {
    /// Builds the exporter `config` asks for, reading files (a CA) relative to `base_dir`.
    /// Needs a tokio runtime (the gRPC channel is created here, connecting lazily).
    pub fn from_config(config: &ExporterConfig, base_dir: &Path) -> Result<Self, OtlpError> {
        Ok(match config {
            ExporterConfig::Stdout(stdout) => Self::Stdout(LineExporter::stdout(stdout.format)),
            ExporterConfig::Otlp(otlp) => Self::Otlp(Box::new(otlp_exporter(otlp, base_dir)?)),
        })
    }

    /// Exports spans that all come from the process `resource` describes.
    pub async fn export(&mut self, resource: &Resource, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            Self::Stdout(exporter) => export_with(exporter, resource, batch).await,
            Self::Otlp(exporter) => export_with(exporter.as_mut(), resource, batch).await,
        }
    }

    pub fn shutdown(&mut self) -> OTelSdkResult {
        match self {
            Self::Stdout(exporter) => exporter.shutdown(),
            Self::Otlp(exporter) => exporter.shutdown(),
        }
    }
}

/// One export request: the SDK exporters take the resource as state, set before each batch.
async fn export_with<E: SpanExporter>(
    exporter: &mut E,
    resource: &Resource,
    batch: Vec<SpanData>,
) -> OTelSdkResult {
    exporter.set_resource(resource);
    exporter.export(batch).await
}
