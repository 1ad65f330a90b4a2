//! The OTLP exporter, built from config the way `OTEL_EXPORTER_OTLP_*` settings are read.

use std::collections::HashMap;

use opentelemetry_otlp::{
    ExporterBuildError, Protocol, WithExportConfig, WithHttpConfig as _, WithTonicConfig as _,
};
use spanprobe_config::{Compression, OtlpConfig, OtlpProtocol};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

/// The OTLP exporter could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("exporter.otlp: endpoint `{endpoint}`")]
    Build {
        endpoint: String,
        #[source]
        source: ExporterBuildError,
    },
    /// Header values are not shown: they often hold secrets.
    #[error(
        "exporter.otlp.headers: `{name}` is not a valid gRPC metadata name or its value is not ASCII"
    )]
    Header { name: String },
}

/// Builds a gRPC or HTTP/protobuf OTLP span exporter. For HTTP a base endpoint gets
/// `/v1/traces` appended, as the OpenTelemetry spec says for `OTEL_EXPORTER_OTLP_ENDPOINT`;
/// a traces endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used as is.
pub fn otlp_exporter(config: &OtlpConfig) -> Result<opentelemetry_otlp::SpanExporter, OtlpError> {
    let endpoint = signal_endpoint(config);
    let compression = match config.compression {
        Compression::None => None,
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
    };
    let built = match config.protocol {
        OtlpProtocol::Grpc => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_metadata(metadata(config)?);
            let builder = with_common(builder, &endpoint, config);
            match compression {
                Some(compression) => builder.with_compression(compression),
                None => builder,
            }
            .build()
        }
        OtlpProtocol::HttpProtobuf => {
            let headers: HashMap<String, String> = config
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_headers(headers);
            let builder = with_common(builder, &endpoint, config);
            match compression {
                Some(compression) => builder.with_compression(compression),
                None => builder,
            }
            .build()
        }
    };
    built.map_err(|source| OtlpError::Build { endpoint, source })
}

/// The settings both transports take through the same trait: endpoint and timeout.
fn with_common<B: WithExportConfig>(builder: B, endpoint: &str, config: &OtlpConfig) -> B {
    let builder = builder.with_endpoint(endpoint);
    match config.timeout {
        Some(timeout) => builder.with_timeout(timeout),
        None => builder,
    }
}

fn metadata(config: &OtlpConfig) -> Result<MetadataMap, OtlpError> {
    let mut metadata = MetadataMap::new();
    for (name, value) in &config.headers {
        let invalid = || OtlpError::Header { name: name.clone() };
        let key =
            MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes()).map_err(|_| invalid())?;
        let value = MetadataValue::try_from(value.as_str()).map_err(|_| invalid())?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}

/// The URL spans are sent to.
fn signal_endpoint(config: &OtlpConfig) -> String {
    if let Some(traces) = &config.traces_endpoint {
        return traces.clone();
    }
    let base = config
        .endpoint
        .as_deref()
        .unwrap_or_else(|| config.protocol.default_endpoint());
    match config.protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str, protocol: OtlpProtocol) -> OtlpConfig {
        OtlpConfig {
            endpoint: Some(endpoint.into()),
            protocol,
            ..Default::default()
        }
    }

    #[test]
    fn http_appends_the_traces_path_once() {
        for base in ["http://collector:4318", "http://collector:4318/"] {
            assert_eq!(
                signal_endpoint(&config(base, OtlpProtocol::HttpProtobuf)),
                "http://collector:4318/v1/traces"
            );
        }
        assert_eq!(
            signal_endpoint(&config("http://collector:4317", OtlpProtocol::Grpc)),
            "http://collector:4317"
        );
        let traces = OtlpConfig {
            traces_endpoint: Some("http://c:4318/custom".into()),
            ..config("http://ignored:4318", OtlpProtocol::HttpProtobuf)
        };
        assert_eq!(signal_endpoint(&traces), "http://c:4318/custom");
        let default = OtlpConfig {
            protocol: OtlpProtocol::HttpProtobuf,
            ..Default::default()
        };
        assert_eq!(signal_endpoint(&default), "http://localhost:4318/v1/traces");
    }

    #[tokio::test]
    async fn refuses_a_malformed_endpoint() {
        let err = otlp_exporter(&config("not a url", OtlpProtocol::Grpc)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("exporter.otlp: endpoint `not a url`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn refuses_bad_grpc_header_names_without_showing_values() {
        let mut bad = config("http://c:4317", OtlpProtocol::Grpc);
        bad.headers
            .insert("bad header".into(), "secret-token".into());
        let err = otlp_exporter(&bad).unwrap_err().to_string();
        assert!(
            err.contains("`bad header`") && !err.contains("secret-token"),
            "{err}"
        );
    }
}
