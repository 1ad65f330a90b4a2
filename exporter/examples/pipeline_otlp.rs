//! The userspace pipeline end to end on one core, without the kernel: ring-buffer records (the
//! bytes the eBPF return program writes) decoded, assembled into spans, and encoded as the OTLP
//! protobuf export request both OTLP transports send, in batches of the export queue's default
//! size. A criterion benchmark, run by `scripts/bench.sh`:
//!
//! ```sh
//! cargo run --release --example pipeline_otlp -- --bench
//! ```

use std::{hint::black_box, path::PathBuf, time::Duration};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry_proto::{
    tonic::collector::trace::v1::ExportTraceServiceRequest,
    transform::{common::tonic::ResourceAttributesWithSchema, trace::tonic},
};
use opentelemetry_sdk::{Resource, trace::SpanData};
use prost::Message as _;
use spanprobe::{
    decode::decode_event, ids::IdGenerator, ktime::BootClock, resolve::ProbedFunction,
    span::SpanAssembler,
};
use spanprobe_common::CallEvent;
use spanprobe_config::{ArgSpec, FunctionSpec, Located, ReturnSpec, ValueType};

/// The export queue's default batch size (`batch.batch_size`).
const BATCH: usize = 512;

/// What `scripts/bench.sh` probes: `long work(long x)`, its argument and return value.
fn work() -> ProbedFunction {
    ProbedFunction {
        binary: PathBuf::from("/bench/calls"),
        symbol: "work".into(),
        address: Some(0x18e0),
        file_offset: 0x18e0,
        entry_skip: 0,
        spec: FunctionSpec {
            args: vec![Located::unplaced(ArgSpec {
                index: 0,
                name: Some("x".into()),
                ty: ValueType::I64,
                max_len: None,
                len: None,
            })],
            return_value: Some(Located::unplaced(ReturnSpec {
                name: None,
                ty: ValueType::I64,
                error_when: None,
            })),
            ..Default::default()
        },
        pid: None,
        entry_only: false,
        source: Some(("/bench/calls.c".into(), 29)),
        stack_frames: 0,
    }
}

/// Records as two threads calling `work` in a loop send them: roots of their own traces,
/// about a microsecond apart.
fn records() -> Vec<Vec<u8>> {
    (0..BATCH as u64)
        .map(|i| {
            let entry_ns = 1_000_000 + i * 1_100;
            let event = CallEvent {
                pid: 4242,
                tid: 4242 + (i % 2) as u32,
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

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "calls"),
            KeyValue::new("process.pid", 4242),
            KeyValue::new("process.executable.path", "/bench/calls"),
            KeyValue::new("host.name", "bench"),
        ])
        .build()
}

fn assemble(assembler: &SpanAssembler, records: &[Vec<u8>]) -> Vec<SpanData> {
    records
        .iter()
        .filter_map(|record| {
            let (event, data) = decode_event(record).ok()?;
            assembler.assemble(&event, data).ok()
        })
        .collect()
}

/// One export request's body, as the OTLP exporters build it.
fn encode(spans: Vec<SpanData>, resource: &ResourceAttributesWithSchema) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: tonic::group_spans_by_resource_and_scope(spans, resource),
    }
    .encode_to_vec()
}

fn pipeline(c: &mut Criterion) {
    let assembler = SpanAssembler::new(&[work()], BootClock::sample(), IdGenerator::random());
    let records = records();
    let resource = ResourceAttributesWithSchema::from(&resource());
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("records_to_spans_512", |b| {
        b.iter(|| black_box(assemble(&assembler, &records)))
    });
    group.bench_function("spans_to_protobuf_512", |b| {
        b.iter_batched(
            || assemble(&assembler, &records),
            |spans| black_box(encode(spans, &resource)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("records_to_protobuf_512", |b| {
        b.iter(|| black_box(encode(assemble(&assembler, &records), &resource)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = pipeline
}
criterion_main!(benches);
