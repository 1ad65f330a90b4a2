//! The userspace pipeline end to end on one core, without the kernel: ring-buffer records (the
//! bytes the eBPF return program writes) handled by the same `Pipeline` `spanprobe run` uses
//! (decoded, assembled into spans with the thread name, the process resource and the summary,
//! queued), taken off the queue in batches of its default size and encoded as the OTLP
//! protobuf export request both OTLP transports send. For comparison, the same spans through
//! opentelemetry-proto's transform, as opentelemetry-otlp encodes them. A criterion
//! benchmark, run by `scripts/bench.sh`:
//!
//! ```sh
//! cargo run --release --example pipeline_otlp -- --bench
//! ```

use std::{hint::black_box, sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::{
    tonic::collector::trace::v1::ExportTraceServiceRequest,
    transform::{common::tonic::ResourceAttributesWithSchema, trace::tonic},
};
use opentelemetry_sdk::trace::SpanData;
use prost::Message as _;
use spanprobe::{
    events::ktime::BootClock,
    export::{QueuedSpan, QueuedSpans, encode_request, span_queue},
    metrics::Metrics,
    plan::capture,
    plan::probe::Probe,
    spans::ids::IdGenerator,
    spans::pipeline::Pipeline,
    spans::resource::Resources,
    spans::span::SpanAssembler,
};
use spanprobe_common::CallEvent;
use spanprobe_config::{ArgSpec, FunctionSpec, Located, ReturnSpec, ValueType};

/// The export queue's default batch size (`batch.batch_size`).
const BATCH: usize = 512;

/// What `scripts/bench.sh` probes: `long work(long x)`, its argument and return value.
fn work() -> Probe {
    let spec = FunctionSpec {
        args: vec![Located::unplaced(ArgSpec::new(
            0,
            Some("x"),
            ValueType::I64,
        ))],
        return_value: Some(Located::unplaced(ReturnSpec::new(None, ValueType::I64))),
        ..Default::default()
    };
    Probe {
        source: Some(("/bench/calls.c".into(), 29)),
        ..Probe::new("/bench/calls", "work", 0x18e0, spec)
    }
}

/// Records as two threads calling `work` in a loop send them: roots of their own traces,
/// about a microsecond apart. The pid and thread ids are this process's, so that the
/// resource and thread names are read from /proc once, as for a live traced process.
fn records() -> Vec<Vec<u8>> {
    let pid = std::process::id();
    // SAFETY: gettid(2) has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    (0..BATCH as u64)
        .map(|i| {
            let entry_ns = 1_000_000 + i * 1_100;
            let event = CallEvent {
                pid,
                tid: if i % 2 == 0 { pid } else { tid },
                depth: 1,
                entry_ns,
                return_ns: entry_ns + 700,
                root_entry_ns: entry_ns,
                args: [i, 0, 0, 0, 0, 0, 0, 0],
                ret: 2 * i + 1,
                ..Default::default()
            };
            // SAFETY: CallEvent is plain integers: viewing it as bytes is what the ring buffer
            // carries.
            unsafe {
                std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<CallEvent>())
            }
            .to_vec()
        })
        .collect()
}

/// The pipeline `spanprobe run` builds for `work`, and the receiving end of its queue.
fn pipeline() -> (Pipeline, QueuedSpans) {
    let functions = [work()];
    let metrics = Arc::new(Metrics::default());
    let (queue, queued) = span_queue(BATCH * 4, Arc::clone(&metrics));
    let plans = capture::plans(&functions, &Default::default());
    let assembler = SpanAssembler::new(
        &functions,
        &plans,
        BootClock::sample(),
        IdGenerator::random(),
    );
    let resources = Resources::new(None, &Default::default());
    (
        Pipeline::new(&functions, &plans, assembler, resources, queue, metrics),
        queued,
    )
}

/// Hands every record to the pipeline and takes the queued spans off the queue.
fn handle(
    pipeline: &mut Pipeline,
    queued: &mut QueuedSpans,
    records: &[Vec<u8>],
    batch: &mut Vec<QueuedSpan>,
) {
    batch.clear();
    for record in records {
        pipeline.handle(record);
    }
    queued.take_ready(batch, records.len());
    assert_eq!(
        batch.len(),
        records.len(),
        "every record becomes a queued span"
    );
}

/// One export request's body, as spanprobe's exporter encodes it.
fn encode(spans: &[QueuedSpan], body: &mut Vec<u8>) {
    body.clear();
    encode_request(spans, body);
}

/// The same request as opentelemetry-otlp builds it: opentelemetry-proto's structs, then prost.
fn encode_with_opentelemetry_proto(
    spans: Vec<SpanData>,
    resource: &ResourceAttributesWithSchema,
) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: tonic::group_spans_by_resource_and_scope(spans, resource),
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let records = records();
    let (mut pipeline, mut queued) = pipeline();
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(records.len() as u64));
    let mut batch = Vec::with_capacity(BATCH);
    let mut body = Vec::new();
    group.bench_function("records_to_spans_512", |b| {
        b.iter(|| {
            handle(&mut pipeline, &mut queued, &records, &mut batch);
            black_box(&batch);
        })
    });
    handle(&mut pipeline, &mut queued, &records, &mut batch);
    group.bench_function("spans_to_protobuf_512", |b| {
        b.iter(|| {
            encode(&batch, &mut body);
            black_box(&body);
        })
    });
    group.bench_function("records_to_protobuf_512", |b| {
        b.iter(|| {
            handle(&mut pipeline, &mut queued, &records, &mut batch);
            encode(&batch, &mut body);
            black_box(&body);
        })
    });
    handle(&mut pipeline, &mut queued, &records, &mut batch);
    let resource = ResourceAttributesWithSchema::from(batch[0].resource.as_ref());
    let spans: Vec<SpanData> = batch.iter().map(|queued| (*queued.span).clone()).collect();
    group.bench_function("spans_to_protobuf_opentelemetry_proto_512", |b| {
        b.iter_batched(
            || spans.clone(),
            |spans| black_box(encode_with_opentelemetry_proto(spans, &resource)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
