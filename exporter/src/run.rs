//! `spanprobe run`: wires the stages together, from config to exported spans, and shuts them
//! down in the order that loses nothing.

use std::{ffi::OsString, path::Path};

use anyhow::Context as _;
use spanprobe_common::Counter;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};

use crate::{
    bpf::{KernelCounters, ProcessFilter, Tracer},
    child::{self, GatedChild},
    export::{ExportSettings, ExportStats, Exporter, spawn_export},
    ids::IdGenerator,
    ktime::BootClock,
    pipeline::{Pipeline, PipelineStats},
    reader::read_events,
    resolve::resolve,
    resource::Resources,
    span::SpanAssembler,
};

/// How `run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// The traced command's exit code (128 + signal if it was killed); 0 without a command.
    pub exit_code: i32,
}

/// Traces the functions in the config at `config_path`. With a `command`, traces only that
/// command's process, from its first instruction until it exits; without, traces every
/// process until SIGINT or SIGTERM.
pub async fn run(config_path: &Path, command: &[OsString]) -> anyhow::Result<RunOutcome> {
    // The ring-buffer reader owns the symbolizer, which must stay on one thread.
    tokio::task::LocalSet::new()
        .run_until(trace(config_path, command))
        .await
}

async fn trace(config_path: &Path, command: &[OsString]) -> anyhow::Result<RunOutcome> {
    let config = spanprobe_config::load(config_path)?;
    let functions = resolve(&config, config_path)?;
    let exporter = Exporter::from_config(&config.exporter)?;

    let filter = if command.is_empty() {
        ProcessFilter::All
    } else {
        ProcessFilter::Selected
    };
    let mut tracer = Tracer::attach(&functions, filter, &config.limits)?;
    tracing::info!(
        probes = tracer.attached(),
        functions = functions.len(),
        "attached"
    );

    let (queue, export_task) = spawn_export(exporter, ExportSettings::from_config(&config.batch));
    let assembler = SpanAssembler::new(&functions, BootClock::sample(), IdGenerator::random());
    let mut pipeline = Pipeline::new(
        &functions,
        assembler,
        Resources::new(config.service_name.clone(), &config.resource),
        queue,
    );
    let ring = tracer.take_events()?;
    let (stop_reader, stop) = oneshot::channel();
    let reader = tokio::task::spawn_local(async move {
        let result = read_events(ring, stop, |record| pipeline.handle(record)).await;
        (result, pipeline.finish())
    });

    let exit_code = if command.is_empty() {
        wait_for_termination().await?;
        0
    } else {
        trace_command(&mut tracer, command).await?
    };

    // Stop reading only after the traced calls are all in the ring buffer; the reader drains
    // it completely before returning.
    tracing::debug!("draining the ring buffer");
    let _ = stop_reader.send(());
    let (read_result, (pipeline_stats, mut summary)) =
        reader.await.context("ring-buffer reader panicked")?;
    read_result.context("reading the ring buffer")?;
    let kernel = tracer.counters()?;
    // Detaching waits on the kernel (~0.1 s per probe): do it while the queue flushes.
    let detach = tokio::task::spawn_blocking(move || drop(tracer));
    let export_stats = export_task.await.context("export task panicked")?;
    detach.await.context("detaching the probes")?;
    eprint!("{}", summary.table(&export_stats.exported_by_name));
    report(&pipeline_stats, &export_stats, &kernel);
    Ok(RunOutcome { exit_code })
}

/// Starts `command` with its pid in the filter, forwards SIGINT/SIGTERM to it, and returns
/// its exit code once it has exited.
async fn trace_command(tracer: &mut Tracer, command: &[OsString]) -> anyhow::Result<i32> {
    let gated = GatedChild::spawn(command).await?;
    tracer.trace_process(gated.pid())?;
    let program = command.first().cloned().unwrap_or_default();
    let child = gated.start(&program).await?;
    let pid = child.pid();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let wait = child.wait();
    tokio::pin!(wait);
    let status = loop {
        tokio::select! {
            status = &mut wait => break status.context("waiting for the traced command")?,
            _ = interrupt.recv() => child::signal(pid, libc::SIGINT),
            _ = terminate.recv() => child::signal(pid, libc::SIGTERM),
        }
    };
    Ok(child::exit_code(status))
}

async fn wait_for_termination() -> anyhow::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// One summary line on stderr, and a warning for anything lost.
fn report(pipeline: &PipelineStats, export: &ExportStats, kernel: &KernelCounters) {
    let ring_full = kernel.get(Counter::RingBufFull);
    let too_deep = kernel.get(Counter::DepthExceeded);
    let lost = ring_full
        + too_deep
        + kernel.get(Counter::NoThreadStack)
        + kernel.get(Counter::MemoryLost)
        + pipeline.undecodable
        + pipeline.unknown_function
        + export.failed
        + export.dropped_queue_full
        + export.dropped_at_shutdown;
    tracing::info!(
        events = pipeline.events,
        exported = export.exported,
        dropped = export.dropped_queue_full + export.failed + export.dropped_at_shutdown,
        below_min_duration = pipeline.below_min_duration,
        lost,
        "done"
    );
    if lost > 0 {
        tracing::warn!(
            ring_buffer_full = ring_full,
            depth_exceeded = too_deep,
            no_thread_stack = kernel.get(Counter::NoThreadStack),
            memory_lost = kernel.get(Counter::MemoryLost),
            returns_without_entry = kernel.get(Counter::ReturnWithoutEntry),
            undecodable = pipeline.undecodable,
            unknown_function = pipeline.unknown_function,
            export_failed = export.failed,
            queue_full = export.dropped_queue_full,
            shutdown_deadline = export.dropped_at_shutdown,
            export_retries = export.retries,
            "{lost} calls were not exported"
        );
    }
}
