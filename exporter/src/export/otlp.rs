//! The OTLP exporter, built from config the way `OTEL_EXPORTER_OTLP_*` settings are read.

use std::{collections::HashMap, path::Path};

use opentelemetry_otlp::{
    ExporterBuildError, Protocol, WithExportConfig, WithHttpConfig as _, WithTonicConfig as _,
};
use spanprobe_config::{Compression, OtlpConfig, OtlpProtocol};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{ClientTlsConfig, Endpoint};

use super::tls::{self, Tls, TlsError};

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
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("exporter.otlp: endpoint `{endpoint}`")]
    Channel {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("exporter.otlp: cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// Builds a gRPC or HTTP/protobuf OTLP span exporter. For HTTP a base endpoint gets
/// `/v1/traces` appended, as the OpenTelemetry spec says for `OTEL_EXPORTER_OTLP_ENDPOINT`;
/// a traces endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used as is. An `https://`
/// endpoint is verified as `tls` says, with files relative to `base_dir`.
pub fn otlp_exporter(
    config: &OtlpConfig,
    base_dir: &Path,
) -> Result<opentelemetry_otlp::SpanExporter, OtlpError> {
    let endpoint = signal_endpoint(config);
    let tls = endpoint_tls(config, base_dir)?;
    tls::install_crypto_provider();
    let compression = match config.compression {
        Compression::None => None,
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
    };
    let built = match config.protocol {
        OtlpProtocol::Grpc => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_metadata(metadata(config)?);
            let builder = match &tls {
                Some(tls) => builder.with_channel(tls_channel(&endpoint, tls)?),
                None => builder,
            };
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
            let builder = match &tls {
                Some(tls) => builder.with_http_client(tls_http_client(tls, config)?),
                None => builder,
            };
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

/// How the endpoint's certificate is verified; `None` for a plain `http://` endpoint. Reads
/// the CA file, so `spanprobe check` calls it too.
pub fn endpoint_tls(config: &OtlpConfig, base_dir: &Path) -> Result<Option<Tls>, TlsError> {
    if config.uses_tls() {
        Tls::new(config.tls.as_ref(), base_dir).map(Some)
    } else {
        Ok(None)
    }
}

/// The settings both transports take through the same trait: endpoint and timeout.
fn with_common<B: WithExportConfig>(builder: B, endpoint: &str, config: &OtlpConfig) -> B {
    let builder = builder.with_endpoint(endpoint);
    match config.timeout {
        Some(timeout) => builder.with_timeout(timeout),
        None => builder,
    }
}

/// A gRPC channel that verifies the server with `tls` (connecting lazily, as the exporter's
/// own channel would).
fn tls_channel(endpoint: &str, tls: &Tls) -> Result<tonic::transport::Channel, OtlpError> {
    let channel_error = |source| OtlpError::Channel {
        endpoint: endpoint.to_owned(),
        source,
    };
    Ok(Endpoint::from_shared(endpoint.to_owned())
        .map_err(channel_error)?
        .tls_config_with_verifier(ClientTlsConfig::new(), tls.verifier())
        .map_err(channel_error)?
        .connect_lazy())
}

/// The HTTP client the exporter would build itself, with `tls` instead of its defaults.
fn tls_http_client(tls: &Tls, config: &OtlpConfig) -> Result<reqwest::Client, OtlpError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config()?)
        .timeout(
            config
                .timeout
                .unwrap_or(opentelemetry_otlp::OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT),
        )
        .build()
        .map_err(OtlpError::HttpClient)
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
    let url = config.endpoint_in_use();
    match config.protocol {
        OtlpProtocol::HttpProtobuf if config.traces_endpoint.is_none() => {
            format!("{}/v1/traces", url.trim_end_matches('/'))
        }
        _ => url.to_owned(),
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
        let err =
            otlp_exporter(&config("not a url", OtlpProtocol::Grpc), Path::new(".")).unwrap_err();
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
        let err = otlp_exporter(&bad, Path::new(".")).unwrap_err().to_string();
        assert!(
            err.contains("`bad header`") && !err.contains("secret-token"),
            "{err}"
        );
    }
}
