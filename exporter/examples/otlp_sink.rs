//! A local OTLP trace receiver for benchmarks: serves OTLP/gRPC and OTLP/HTTP (protobuf, gzip or
//! not) on 127.0.0.1, decodes every request as a collector would, counts the spans and keeps
//! nothing, so that it can take hours of full-rate exports in constant memory.
//!
//! ```sh
//! cargo run --release --example otlp_sink [GRPC_PORT [HTTP_PORT]]
//! ```
//!
//! Prints `grpc=PORT http=PORT` once both listen (port 0, the default, picks free ports), then
//! on SIGINT or SIGTERM, or when its standard input is a pipe that is closed, prints
//! `spans=N requests=M` and exits. (A pipe only: a background job's standard input is
//! /dev/null, at its end from the start.)

use std::{
    fs::File,
    io::Read as _,
    net::{Ipv4Addr, SocketAddr},
    os::{fd::AsFd as _, unix::fs::FileTypeExt as _},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message as _;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};
use tonic::{codec::CompressionEncoding, transport::server::TcpIncoming};

const GRPC_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Large batches must never be refused by the sink itself.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
struct Counts {
    spans: AtomicU64,
    requests: AtomicU64,
}

impl Counts {
    fn record(&self, request: &ExportTraceServiceRequest) {
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

struct Grpc(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.record(request.get_ref());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// `POST /v1/traces` with a protobuf body, gzipped or not.
async fn export_http(
    State(counts): State<Arc<Counts>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|encoding| encoding.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let raw = if gzip {
        let mut raw = Vec::new();
        if let Err(error) = flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut raw) {
            return (StatusCode::BAD_REQUEST, format!("bad gzip body: {error}")).into_response();
        }
        Bytes::from(raw)
    } else {
        body
    };
    match ExportTraceServiceRequest::decode(raw) {
        Ok(request) => {
            counts.record(&request);
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("bad protobuf: {error}")).into_response(),
    }
}

fn port_argument(args: &[String], index: usize) -> anyhow::Result<u16> {
    args.get(index).map_or(Ok(0), |port| {
        port.parse()
            .map_err(|_| anyhow::anyhow!("port {port:?} is not a number from 0 to 65535"))
    })
}

/// Receives `()` when standard input, if it is a pipe, reaches its end; fails at once if it is
/// not a pipe (`select!` then disables the branch). Read on a thread of its own: a blocking
/// read in tokio's pool would hold up the runtime's shutdown.
fn stdin_closed() -> oneshot::Receiver<()> {
    let (closed, receiver) = oneshot::channel();
    let is_pipe = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .and_then(|stdin| stdin.metadata())
        .is_ok_and(|metadata| metadata.file_type().is_fifo());
    if is_pipe {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = closed.send(());
        });
    }
    receiver
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (grpc_port, http_port) = (port_argument(&args, 0)?, port_argument(&args, 1)?);
    let counts = Arc::new(Counts::default());

    let grpc = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, grpc_port))).await?;
    let http = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, http_port))).await?;
    println!(
        "grpc={} http={}",
        grpc.local_addr()?.port(),
        http.local_addr()?.port()
    );

    let service = TraceServiceServer::new(Grpc(Arc::clone(&counts)))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    // HTTP/2 flow-control windows sized as a collector's grow to (grpc-go estimates the
    // bandwidth-delay product, up to 16 MiB): with h2's default 64 KiB, each request of a
    // few hundred KiB would wait for window updates.
    let grpc_server = tonic::transport::Server::builder()
        .initial_stream_window_size(GRPC_WINDOW_BYTES)
        .initial_connection_window_size(GRPC_WINDOW_BYTES)
        .add_service(service)
        .serve_with_incoming(TcpIncoming::from(grpc));
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(export_http))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(Arc::clone(&counts));
    let http_server = axum::serve(http, app);

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let stdin_closed = stdin_closed();
    tokio::select! {
        result = grpc_server => result?,
        result = http_server => result?,
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        Ok(()) = stdin_closed => {}
    }
    println!(
        "spans={} requests={}",
        counts.spans.load(Ordering::Relaxed),
        counts.requests.load(Ordering::Relaxed)
    );
    Ok(())
}
