//! The OTLP exporter, built from config the way `OTEL_EXPORTER_OTLP_*` settings are read.

use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig as _};
use spanprobe_config::{OtlpConfig, OtlpProtocol};

/// The OTLP exporter could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("exporter.otlp: endpoint `{endpoint}`")]
pub struct OtlpError {
    pub endpoint: String,
    #[source]
    pub source: ExporterBuildError,
}

/// Builds a gRPC or HTTP/protobuf OTLP span exporter. For HTTP the endpoint is a base URL and
/// `/v1/traces` is appended, as the OpenTelemetry spec says for `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn otlp_exporter(config: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, OtlpError> {
    let base = config
        .endpoint
        .as_deref()
        .unwrap_or_else(|| config.protocol.default_endpoint());
    let endpoint = signal_endpoint(base, config.protocol);
    let built = match config.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .build(),
    };
    built.map_err(|source| OtlpError { endpoint, source })
}

/// The URL spans are sent to for a base endpoint.
fn signal_endpoint(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_appends_the_traces_path_once() {
        for base in ["http://collector:4318", "http://collector:4318/"] {
            assert_eq!(
                signal_endpoint(base, OtlpProtocol::HttpProtobuf),
                "http://collector:4318/v1/traces"
            );
        }
        assert_eq!(
            signal_endpoint("http://collector:4317", OtlpProtocol::Grpc),
            "http://collector:4317"
        );
    }

    #[tokio::test]
    async fn refuses_a_malformed_endpoint() {
        let config = OtlpConfig {
            endpoint: Some("not a url".into()),
            protocol: OtlpProtocol::Grpc,
        };
        let err = otlp_exporter(&config).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("exporter.otlp: endpoint `not a url`"),
            "{err}"
        );
    }
}
