//! In-process OTLP trace receiver (gRPC and HTTP/protobuf) that records every export request for tests to inspect.

// Each integration-test binary includes this module but uses only part of it.
#![allow(dead_code)]

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};

/// Generous message limit so large batches are never rejected by the receiver itself.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long `stop` waits for in-flight connections to drain before aborting the server task.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Transport on which an export request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    Http,
}

/// One span as received, together with the context it was exported in.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The decoded span.
    pub span: Span,
    /// Attributes of the resource the span was exported under.
    pub resource: Vec<KeyValue>,
    /// Name of the instrumentation scope the span was exported under.
    pub scope_name: String,
    /// Transport the span arrived on.
    pub protocol: Protocol,
}

impl ReceivedSpan {
    /// The span name.
    pub fn name(&self) -> &str {
        &self.span.name
    }

    /// The value of span attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        find(&self.span.attributes, key)
    }

    /// Span attribute `key` if it is an integer.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        as_int(self.attr(key))
    }

    /// Span attribute `key` if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        as_str(self.attr(key))
    }

    /// Span attribute `key` if it is a boolean.
    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        match self.attr(key) {
            Some(Value::BoolValue(b)) => Some(*b),
            _ => None,
        }
    }

    /// Resource attribute `key` if it is a string.
    pub fn resource_str(&self, key: &str) -> Option<&str> {
        as_str(find(&self.resource, key))
    }

    /// Resource attribute `key` if it is an integer.
    pub fn resource_int(&self, key: &str) -> Option<i64> {
        as_int(find(&self.resource, key))
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn as_int(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn as_str(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// How the receiver answers export requests, on both transports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Answer {
    /// Stores the spans and says so.
    #[default]
    Accept,
    /// Stores the spans but says it rejected some (an OTLP partial success).
    PartiallyAccept { rejected: i64, message: String },
    /// Refuses the request as malformed (gRPC INVALID_ARGUMENT, HTTP 400): not to be retried.
    Refuse,
    /// Says it cannot take requests now (gRPC UNAVAILABLE, HTTP 503): to be retried.
    Unavailable,
}

/// State shared between both servers and the test.
#[derive(Default)]
struct Shared {
    /// Every export request in arrival order, tagged with its transport.
    requests: Mutex<Vec<(Protocol, ExportTraceServiceRequest)>>,
    /// The headers (gRPC metadata) of every request, in arrival order.
    headers: Mutex<Vec<(Protocol, axum::http::HeaderMap)>>,
    answer: Mutex<Answer>,
    /// Requests answered with an error (not stored).
    refused: std::sync::atomic::AtomicUsize,
    /// How long each request is held before it is answered.
    delay: Mutex<Duration>,
    /// Requests being held now, and the most held at once.
    held: std::sync::atomic::AtomicUsize,
    most_held: std::sync::atomic::AtomicUsize,
    /// Woken on every stored request so `wait_for_spans` needs no polling.
    arrived: Notify,
}

impl Shared {
    /// Holds a request for the configured delay, keeping count of how many are held at once.
    async fn hold(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let delay = *self.delay.lock().unwrap_or_else(PoisonError::into_inner);
        if delay.is_zero() {
            return;
        }
        let now = self.held.fetch_add(1, SeqCst) + 1;
        self.most_held.fetch_max(now, SeqCst);
        tokio::time::sleep(delay).await;
        self.held.fetch_sub(1, SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Protocol, ExportTraceServiceRequest)>> {
        // A test that panicked while holding the lock must not hide what was received.
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `request` unless the answer is an error; returns the answer to give.
    fn record(
        &self,
        protocol: Protocol,
        headers: axum::http::HeaderMap,
        request: ExportTraceServiceRequest,
    ) -> Answer {
        self.headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((protocol, headers));
        let answer = self
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if matches!(answer, Answer::Refuse | Answer::Unavailable) {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        } else {
            self.lock().push((protocol, request));
        }
        self.arrived.notify_waiters();
        answer
    }

    fn spans(&self) -> Vec<ReceivedSpan> {
        let mut out = Vec::new();
        for (protocol, request) in self.lock().iter() {
            for resource_spans in &request.resource_spans {
                let resource = resource_spans
                    .resource
                    .clone()
                    .unwrap_or_default()
                    .attributes;
                for scope_spans in &resource_spans.scope_spans {
                    let scope_name = scope_spans.scope.clone().unwrap_or_default().name;
                    out.extend(scope_spans.spans.iter().map(|span| ReceivedSpan {
                        span: span.clone(),
                        resource: resource.clone(),
                        scope_name: scope_name.clone(),
                        protocol: *protocol,
                    }));
                }
            }
        }
        out
    }
}

/// A listener on localhost:`port` (0: any free port) for the `transport` server, and its address.
async fn listen(port: u16, transport: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .unwrap_or_else(|e| panic!("receiver: bind {transport} listener: {e}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("receiver: {transport} listener address: {e}"));
    (listener, address)
}

/// gRPC `TraceService` that stores requests in the shared state.
struct GrpcService(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.hold().await;
        let (metadata, _, request) = request.into_parts();
        match self
            .0
            .record(Protocol::Grpc, metadata.into_headers(), request)
        {
            Answer::Accept => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Answer::PartiallyAccept { rejected, message } => {
                Ok(tonic::Response::new(partial_success(rejected, message)))
            }
            Answer::Refuse => Err(tonic::Status::invalid_argument("receiver: refused")),
            Answer::Unavailable => Err(tonic::Status::unavailable("receiver: unavailable")),
        }
    }
}

/// Handler for `POST /v1/traces` with a (possibly gzipped) protobuf body.
async fn export_http(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    if header_str(header::CONTENT_TYPE).contains("json") {
        // Only the protobuf encoding is implemented; say so rather than mis-decode.
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "receiver: only application/x-protobuf is supported",
        )
            .into_response();
    }
    let raw = match header_str(header::CONTENT_ENCODING).trim() {
        "" | "identity" => body.to_vec(),
        "gzip" => {
            let mut raw = Vec::new();
            if let Err(e) = flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut raw) {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("receiver: bad gzip body: {e}"),
                )
                    .into_response();
            }
            raw
        }
        other => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("receiver: unsupported content-encoding {other:?}"),
            )
                .into_response();
        }
    };
    shared.hold().await;
    match ExportTraceServiceRequest::decode(&raw[..]) {
        Ok(request) => {
            let response = match shared.record(Protocol::Http, headers, request) {
                Answer::Accept => ExportTraceServiceResponse::default(),
                Answer::PartiallyAccept { rejected, message } => partial_success(rejected, message),
                Answer::Refuse => {
                    return (StatusCode::BAD_REQUEST, "receiver: refused").into_response();
                }
                Answer::Unavailable => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "1")],
                        "receiver: unavailable",
                    )
                        .into_response();
                }
            };
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                response.encode_to_vec(),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("receiver: bad protobuf: {e}"),
        )
            .into_response(),
    }
}

fn partial_success(rejected: i64, message: String) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: message,
        }),
    }
}

/// The certificate and key a TLS receiver presents, PEM-encoded.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl ServerIdentity {
    /// A fresh self-signed certificate for `localhost` and 127.0.0.1.
    pub fn self_signed() -> ServerIdentity {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("receiver: generate a self-signed certificate");
        ServerIdentity {
            cert_pem: key.cert.pem(),
            key_pem: key.signing_key.serialize_pem(),
        }
    }

    fn rustls_config(&self) -> tokio_rustls::rustls::ServerConfig {
        use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("receiver: certificate PEM");
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("receiver: key PEM");
        let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("receiver: TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("receiver: TLS certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

/// Serves `app` over TLS until `shutdown` fires: what `axum::serve` does for plain TCP.
async fn serve_https(
    listener: TcpListener,
    app: axum::Router,
    identity: &ServerIdentity,
    shutdown: oneshot::Receiver<()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(identity.rustls_config()));
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that does not trust the certificate ends the handshake; nothing to serve.
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

/// A running server: its shutdown trigger and task.
struct ServerHandle {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    async fn stop(self) {
        // The server may already have exited; then there is nothing to signal.
        let _ = self.shutdown.send(());
        let abort = self.task.abort_handle();
        // Graceful shutdown closes the listener at once but waits for open connections;
        // bound that wait so a stuck client cannot hang the test.
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// In-process OTLP trace receiver serving gRPC and HTTP on 127.0.0.1 ephemeral ports.
pub struct Receiver {
    shared: Arc<Shared>,
    /// Serving TLS.
    tls: bool,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    grpc: ServerHandle,
    http: ServerHandle,
}

impl Receiver {
    /// Starts gRPC and HTTP servers on 127.0.0.1:0 in the current tokio runtime.
    ///
    /// Panics if a listener cannot be bound, since no test can proceed without one.
    pub async fn start() -> Receiver {
        Self::start_on(0, 0).await
    }

    /// Starts on the given ports (0: any free port), e.g. again after [`Receiver::stop`] to
    /// play a backend that comes back.
    pub async fn start_on(grpc_port: u16, http_port: u16) -> Receiver {
        Self::start_with(grpc_port, http_port, None).await
    }

    /// Starts both servers over TLS, presenting `identity`; endpoints are then
    /// `https://localhost:PORT`.
    pub async fn start_tls(identity: &ServerIdentity) -> Receiver {
        Self::start_with(0, 0, Some(identity.clone())).await
    }

    async fn start_with(grpc_port: u16, http_port: u16, tls: Option<ServerIdentity>) -> Receiver {
        let shared = Arc::new(Shared::default());

        let (grpc_listener, grpc_addr) = listen(grpc_port, "gRPC").await;
        let service = TraceServiceServer::new(GrpcService(shared.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let (grpc_tx, grpc_rx) = oneshot::channel::<()>();
        let mut server = tonic::transport::Server::builder();
        if let Some(identity) = &tls {
            server = server
                .tls_config(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem)),
                )
                .expect("receiver: gRPC TLS config");
        }
        let grpc_task = tokio::spawn(async move {
            let result = server
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), async {
                    // A dropped sender (receiver dropped without `stop`) also shuts down.
                    let _ = grpc_rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("receiver: gRPC server failed: {e}");
            }
        });

        let (http_listener, http_addr) = listen(http_port, "HTTP").await;
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export_http))
            .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
            .with_state(shared.clone());
        let (http_tx, http_rx) = oneshot::channel::<()>();
        let serves_tls = tls.is_some();
        let http_task = tokio::spawn(async move {
            if let Some(identity) = &tls {
                return serve_https(http_listener, app, identity, http_rx).await;
            }
            let result = axum::serve(http_listener, app)
                .with_graceful_shutdown(async {
                    let _ = http_rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("receiver: HTTP server failed: {e}");
            }
        });

        Receiver {
            shared,
            tls: serves_tls,
            grpc_addr,
            http_addr,
            grpc: ServerHandle {
                shutdown: grpc_tx,
                task: grpc_task,
            },
            http: ServerHandle {
                shutdown: http_tx,
                task: http_task,
            },
        }
    }

    /// The ports it listens on: (gRPC, HTTP).
    pub fn ports(&self) -> (u16, u16) {
        (self.grpc_addr.port(), self.http_addr.port())
    }

    /// gRPC endpoint, e.g. `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        self.url(self.grpc_addr)
    }

    /// HTTP base URL, e.g. `http://127.0.0.1:PORT`; clients append `/v1/traces`.
    pub fn http_endpoint(&self) -> String {
        self.url(self.http_addr)
    }

    /// TLS endpoints name the host the certificate was made for.
    fn url(&self, addr: SocketAddr) -> String {
        if self.tls {
            format!("https://localhost:{}", addr.port())
        } else {
            format!("http://{addr}")
        }
    }

    /// All spans received so far, flattened, each with its resource attributes.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.spans()
    }

    /// Waits until at least `n` spans arrived or `timeout` passes; returns what arrived.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register for wake-up before checking, so a request stored in between is not missed.
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.spans();
            }
        }
    }

    /// Number of export requests received over both protocols.
    pub fn requests(&self) -> usize {
        self.shared.lock().len()
    }

    /// The headers of every request so far (for gRPC, its metadata), with its transport.
    pub fn request_headers(&self) -> Vec<(Protocol, axum::http::HeaderMap)> {
        self.shared
            .headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How to answer the requests that arrive from now on.
    pub fn answer(&self, answer: Answer) {
        *self
            .shared
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = answer;
    }

    /// Holds each request that arrives from now on for `delay` before answering.
    pub fn answer_after(&self, delay: Duration) {
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// The most requests held at once (see [`Self::answer_after`]).
    pub fn most_held(&self) -> usize {
        self.shared
            .most_held
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Number of requests answered with an error.
    pub fn refused(&self) -> usize {
        self.shared
            .refused
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops both servers; their ports refuse connections afterwards.
    pub async fn stop(self) {
        tokio::join!(self.grpc.stop(), self.http.stop());
    }
}
