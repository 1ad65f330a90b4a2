//! The OTLP client: sends encoded export requests over gRPC or HTTP/protobuf, configured the
//! way `OTEL_EXPORTER_OTLP_*` settings are read, and says which failures are worth a retry.

use std::{io::Write as _, path::Path, time::Duration};

use bytes::{BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use spanprobe_config::{Compression, OtlpConfig, OtlpProtocol};
use tonic::{
    Code,
    codec::{Codec, CompressionEncoding, EncodeBuf, Encoder},
    metadata::MetadataMap,
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use tonic_types::StatusExt as _;

use super::tls::{self, Tls, TlsError};

/// How long one export request may take unless `exporter.otlp.timeout` says otherwise (the
/// `OTEL_EXPORTER_OTLP_TIMEOUT` default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const USER_AGENT: &str = concat!("spanprobe/", env!("CARGO_PKG_VERSION"));

/// The OTLP client could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// Header values are not shown: they often hold secrets.
    #[error(
        "exporter.otlp.headers: `{name}` is not a valid header name or its value is not \
         printable ASCII"
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
    #[error("exporter.otlp: endpoint `{endpoint}` is not an http:// or https:// URL")]
    Url { endpoint: String },
    #[error("exporter.otlp: cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// An export request that was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("gRPC status {:?}: {}", .0.code(), grpc_message(.0))]
    Grpc(tonic::Status),
    #[error("HTTP request failed: {}", error_chain(.0))]
    Http(reqwest::Error),
    #[error("HTTP status {status}: {body}")]
    HttpStatus {
        status: reqwest::StatusCode,
        body: String,
        /// From a `Retry-After` header, in seconds.
        retry_after: Option<Duration>,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot write the spans: {0}")]
    Write(#[from] std::io::Error),
}

impl SendError {
    /// Whether sending the same request again may succeed, as the OTLP specification
    /// classifies responses: throttling and unavailability yes, a rejected request no.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Grpc(status) => match status.code() {
                Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss => true,
                // Throttling when the server says when to come back; otherwise (a request
                // over its size limit, say) sending the same bytes again would fail again.
                Code::ResourceExhausted => status.get_details_retry_info().is_some(),
                _ => false,
            },
            Self::Http(_) | Self::Timeout(_) => true,
            Self::HttpStatus { status, .. } => matches!(status.as_u16(), 429 | 502 | 503 | 504),
            Self::Write(_) => false,
        }
    }

    /// The wait the server asked for before retrying, if it did (`Retry-After`, or a gRPC
    /// `RetryInfo`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::HttpStatus { retry_after, .. } => *retry_after,
            Self::Grpc(status) => status.get_details_retry_info()?.retry_delay,
            _ => None,
        }
    }
}

/// A status's message, followed by the transport error behind it (a refused connection is
/// otherwise only "transport error").
fn grpc_message(status: &tonic::Status) -> String {
    match std::error::Error::source(status) {
        Some(source) => format!("{}: {}", status.message(), error_chain(source)),
        None => status.message().to_owned(),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What the backend said about an accepted request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Spans it refused although the request as a whole succeeded (OTLP partial success).
    pub rejected: u64,
    pub message: String,
}

impl From<ExportTraceServiceResponse> for Accepted {
    fn from(response: ExportTraceServiceResponse) -> Self {
        response
            .partial_success
            .map(|partial| Self {
                rejected: u64::try_from(partial.rejected_spans).unwrap_or(0),
                message: partial.error_message,
            })
            .unwrap_or_default()
    }
}

impl Accepted {
    /// Of a request of `spans` spans: a backend cannot reject more than it was sent.
    pub fn rejected_of(&self, spans: u64) -> u64 {
        self.rejected.min(spans)
    }
}

/// Sends export requests to one OTLP endpoint.
#[derive(Debug)]
pub struct OtlpClient {
    transport: Transport,
    timeout: Duration,
}

#[derive(Debug)]
enum Transport {
    Grpc {
        client: tonic::client::Grpc<Channel>,
        metadata: MetadataMap,
    },
    Http {
        client: reqwest::Client,
        url: reqwest::Url,
        headers: HeaderMap,
        gzip: bool,
    },
}

/// The gRPC method every OTLP trace receiver serves.
const GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

impl OtlpClient {
    /// A client for the gRPC or HTTP/protobuf endpoint `config` names. For HTTP a base
    /// endpoint gets `/v1/traces` appended, as the OpenTelemetry spec says for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; a traces endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
    /// is used as is. An `https://` endpoint is verified as `tls` says, with files relative
    /// to `base_dir`. Needs a tokio runtime; connects lazily.
    pub fn new(config: &OtlpConfig, base_dir: &Path) -> Result<Self, OtlpError> {
        let endpoint = signal_endpoint(config);
        let url = reqwest::Url::parse(&endpoint)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| OtlpError::Url {
                endpoint: endpoint.clone(),
            })?;
        let headers = headers(config)?;
        let tls = endpoint_tls(config, base_dir)?;
        tls::install_crypto_provider();
        let timeout = config.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let gzip = config.compression == Compression::Gzip;
        let transport = match config.protocol {
            OtlpProtocol::Grpc => {
                let client =
                    tonic::client::Grpc::new(grpc_channel(&endpoint, tls.as_ref(), timeout)?);
                Transport::Grpc {
                    client: if gzip {
                        client.send_compressed(CompressionEncoding::Gzip)
                    } else {
                        client
                    },
                    metadata: MetadataMap::from_headers(headers),
                }
            }
            OtlpProtocol::HttpProtobuf => Transport::Http {
                client: http_client(tls.as_ref(), timeout)?,
                url,
                headers,
                gzip,
            },
        };
        Ok(Self { transport, timeout })
    }

    /// The body to send for an encoded `ExportTraceServiceRequest`: gzipped here for HTTP,
    /// once however often it is sent (tonic compresses gRPC messages itself).
    pub fn body(&self, request: Vec<u8>) -> Bytes {
        match &self.transport {
            Transport::Http { gzip: true, .. } => gzipped(&request).into(),
            _ => request.into(),
        }
    }

    /// Sends a body [`Self::body`] made.
    pub async fn send(&self, request: Bytes) -> Result<Accepted, SendError> {
        let timeout = self.timeout;
        let sending = async {
            match &self.transport {
                Transport::Grpc { client, metadata } => {
                    // A clone per request (a handle on the same channel), so several can be
                    // in flight at once.
                    send_grpc(&mut client.clone(), metadata, request, timeout).await
                }
                Transport::Http {
                    client,
                    url,
                    headers,
                    gzip,
                } => send_http(client, url, headers, *gzip, request).await,
            }
        };
        tokio::time::timeout(timeout, sending)
            .await
            .unwrap_or(Err(SendError::Timeout(timeout)))
    }
}

async fn send_grpc(
    client: &mut tonic::client::Grpc<Channel>,
    metadata: &MetadataMap,
    body: Bytes,
    timeout: Duration,
) -> Result<Accepted, SendError> {
    client
        .ready()
        .await
        .map_err(|error| SendError::Grpc(tonic::Status::from_error(Box::new(error))))?;
    let mut request = tonic::Request::new(body);
    *request.metadata_mut() = metadata.clone();
    request.set_timeout(timeout);
    let path = http::uri::PathAndQuery::from_static(GRPC_EXPORT);
    let response = client
        .unary(request, path, EncodedRequestCodec)
        .await
        .map_err(SendError::Grpc)?;
    Ok(response.into_inner().into())
}

async fn send_http(
    client: &reqwest::Client,
    url: &reqwest::Url,
    headers: &HeaderMap,
    gzip: bool,
    body: Bytes,
) -> Result<Accepted, SendError> {
    let mut request = client
        .post(url.clone())
        .headers(headers.clone())
        .header(CONTENT_TYPE, PROTOBUF);
    if gzip {
        request = request.header(CONTENT_ENCODING, "gzip");
    }
    let mut response = request.body(body).send().await.map_err(SendError::Http)?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let protobuf = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(PROTOBUF.as_bytes()));
        let body = read_at_most(&mut response, ERROR_BODY_BYTES).await;
        return Err(SendError::HttpStatus {
            status,
            body: error_text(&body, protobuf),
            retry_after,
        });
    }
    let body = response.bytes().await.map_err(SendError::Http)?;
    // An empty or undecodable body still means accepted: the status said so.
    Ok(ExportTraceServiceResponse::decode(body)
        .map(Accepted::from)
        .unwrap_or_default())
}

const PROTOBUF: &str = "application/x-protobuf";

/// Of an error response, enough to say why; a misbehaving server may send any amount.
const ERROR_BODY_BYTES: usize = 4096;

async fn read_at_most(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
            }
            _ => break,
        }
    }
    body
}

/// Why an OTLP/HTTP request failed, from its response body: a `google.rpc.Status` when the
/// body is protobuf, as the specification says, else its first line of text.
fn error_text(body: &[u8], protobuf: bool) -> String {
    let text = if protobuf {
        tonic_types::Status::decode(body)
            .map(|status| status.message)
            .unwrap_or_default()
    } else {
        String::from_utf8_lossy(body)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    text.chars().take(200).collect()
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    // Compressing into memory cannot fail: the writer is a Vec.
    encoder.write_all(body).expect("gzip into a Vec");
    encoder.finish().expect("gzip into a Vec")
}

/// Sends an already encoded request as it is and decodes the response with prost.
#[derive(Debug, Clone, Copy)]
struct EncodedRequestCodec;

impl Codec for EncodedRequestCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = EncodedRequestEncoder;
    type Decoder = tonic_prost::ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedRequestEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(Default::default())
    }
}

#[derive(Debug, Clone, Copy)]
struct EncodedRequestEncoder;

impl Encoder for EncodedRequestEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// How the endpoint's certificate is verified; `None` for a plain `http://` endpoint. Reads
/// the CA file, so `spanprobe check` calls it too.
pub fn endpoint_tls(config: &OtlpConfig, base_dir: &Path) -> Result<Option<Tls>, TlsError> {
    if config.uses_tls() {
        Tls::new(config.tls.as_ref().map(|tls| &tls.value), base_dir).map(Some)
    } else {
        Ok(None)
    }
}

/// A lazily connecting gRPC channel, verifying the server with `tls` when there is one.
fn grpc_channel(
    endpoint: &str,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Channel, OtlpError> {
    let channel_error = |source| OtlpError::Channel {
        endpoint: endpoint.to_owned(),
        source,
    };
    let mut builder = Endpoint::from_shared(endpoint.to_owned())
        .map_err(channel_error)?
        .user_agent(USER_AGENT)
        .map_err(channel_error)?
        .timeout(timeout);
    if let Some(tls) = tls {
        builder = builder
            .tls_config_with_verifier(ClientTlsConfig::new(), tls.verifier())
            .map_err(channel_error)?;
    }
    Ok(builder.connect_lazy())
}

/// The HTTP client, with `tls` instead of reqwest's defaults for an `https://` endpoint.
fn http_client(tls: Option<&Tls>, timeout: Duration) -> Result<reqwest::Client, OtlpError> {
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout);
    let builder = match tls {
        Some(tls) => builder.tls_backend_preconfigured(tls.client_config()?),
        None => builder,
    };
    builder.build().map_err(OtlpError::HttpClient)
}

/// `exporter.otlp.headers`, checked once for both transports (gRPC metadata are HTTP/2
/// headers; names are lowercased).
fn headers(config: &OtlpConfig) -> Result<HeaderMap, OtlpError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        let invalid = || OtlpError::Header { name: name.clone() };
        let key = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        headers.insert(key, value);
    }
    Ok(headers)
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
            endpoint: Some(spanprobe_config::Located::unplaced(endpoint.into())),
            protocol,
            ..Default::default()
        }
    }

    #[test]
    fn resource_exhausted_is_retried_only_when_the_server_says_when() {
        use tonic_types::{ErrorDetails, StatusExt as _};
        let plain = SendError::Grpc(tonic::Status::resource_exhausted("message too large"));
        assert!(!plain.is_retryable());
        assert_eq!(plain.retry_after(), None);
        let throttled = SendError::Grpc(tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        ));
        assert!(throttled.is_retryable());
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(2)));
        assert!(SendError::Grpc(tonic::Status::unavailable("down")).is_retryable());
        assert!(!SendError::Grpc(tonic::Status::invalid_argument("bad")).is_retryable());
    }

    #[test]
    fn http_error_bodies_say_why_in_a_line() {
        let status = tonic_types::Status {
            code: 8,
            message: "over quota".into(),
            details: vec![],
        };
        assert_eq!(error_text(&status.encode_to_vec(), true), "over quota");
        assert_eq!(error_text(b"bad request\nat line 2", false), "bad request");
        assert_eq!(error_text(&"x".repeat(1000).into_bytes(), false).len(), 200);
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
            OtlpClient::new(&config("not a url", OtlpProtocol::Grpc), Path::new(".")).unwrap_err();
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
        let err = OtlpClient::new(&bad, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`bad header`") && !err.contains("secret-token"),
            "{err}"
        );
    }
}
