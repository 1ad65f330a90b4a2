//! Userspace costs, measured without the kernel: ring-buffer record to span (decode and
//! assemble), and stack symbolization cold and warm.

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spanprobe::{
    binary::elf::ElfInfo,
    binary::symbols::SymbolTable,
    events::decode::decode_event,
    events::ktime::BootClock,
    plan::capture,
    plan::probe::Probe,
    spans::backtraces::{Backtraces, ProbedAt},
    spans::ids::IdGenerator,
    spans::span::SpanAssembler,
};
use spanprobe_common::CallEvent;
use spanprobe_config::{ArgSpec, FunctionSpec, Located, ReturnSpec, ValueType};

fn function() -> Probe {
    let arg = |index, name| Located::unplaced(ArgSpec::new(index, Some(name), ValueType::I32));
    let spec = FunctionSpec {
        args: vec![arg(0, "a"), arg(1, "b")],
        return_value: Some(Located::unplaced(ReturnSpec::new(
            Some("sum"),
            ValueType::I32,
        ))),
        ..Default::default()
    };
    Probe::new("/bench/demo", "two_ints_and_return", 0x1230, spec)
}

fn record(i: u64) -> Vec<u8> {
    let event = CallEvent {
        pid: 42,
        tid: 42,
        depth: 1,
        entry_ns: 1_000 + i * 100,
        return_ns: 1_050 + i * 100,
        root_entry_ns: 1_000 + i * 100,
        args: [i, i * 2, 0, 0, 0, 0, 0, 0],
        ret: i * 3,
        ..Default::default()
    };
    // SAFETY: viewing a plain-integer struct as bytes.
    unsafe { std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<CallEvent>()) }
        .to_vec()
}

fn events_to_spans(c: &mut Criterion) {
    let functions = [function()];
    let assembler = SpanAssembler::new(
        &functions,
        &capture::plans(&functions, &Default::default()),
        BootClock::sample(),
        IdGenerator::random(),
    );
    let records: Vec<Vec<u8>> = (0..1024).map(record).collect();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("decode_and_assemble_1024", |b| {
        b.iter(|| {
            for record in &records {
                let (event, data) = decode_event(record).unwrap();
                black_box(assembler.assemble(&event, data).unwrap());
            }
        })
    });
    group.finish();
}

fn symbolize(c: &mut Criterion) {
    // This benchmark binary's own functions: real ELF and DWARF, no process needed.
    let exe = std::env::current_exe().unwrap();
    let table = SymbolTable::read(&exe).unwrap();
    let offsets: Vec<u64> = table
        .functions()
        .iter()
        .filter_map(|f| f.file_offset)
        .take(256)
        .collect();
    let elf = ElfInfo::read(&exe).unwrap();
    let first = offsets[0];
    // A "process" that is gone (pid beyond pid_max): frames are placed from the first one.
    let addresses: Vec<u64> = offsets.iter().map(|o| 0x5000_0000_0000 + o).collect();
    let probed = ProbedAt {
        binary: &exe,
        file_offset: first,
        elf: Some(&elf),
    };
    let mut group = c.benchmark_group("symbolize");
    group.throughput(Throughput::Elements(addresses.len() as u64));
    group.bench_function("cold_256_addresses", |b| {
        b.iter_batched(
            Backtraces::new,
            |mut stacks| black_box(stacks.symbolize(u32::MAX, &addresses, 64, probed)),
            criterion::BatchSize::PerIteration,
        )
    });
    let mut warm = Backtraces::new();
    warm.symbolize(u32::MAX, &addresses, 64, probed);
    group.bench_function("warm_256_addresses", |b| {
        b.iter(|| black_box(warm.symbolize(u32::MAX, &addresses, 64, probed)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = events_to_spans, symbolize
}
criterion_main!(benches);
