//! `spanprobe run`: wires the stages together, from config to exported spans, and shuts them
//! down in the order that loses nothing.

use std::{
    ffi::OsString,
    net::SocketAddr,
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use signal_hook::{iterator::exfiltrator::WithOrigin, low_level::siginfo::Cause};
use signal_hook_tokio::SignalsInfo;
use spanprobe_common::Counter;
use spanprobe_config::{Config, ExporterConfig, Located};
use tokio::sync::{mpsc, oneshot};

use crate::{
    command::{
        child::{self, GatedChild, RunningChild},
        uncalled,
    },
    events::{
        ktime::BootClock,
        orphans,
        reader::{Input, read_events},
    },
    export::{ExportSettings, Exporter, span_queue, spawn_export},
    kernel::bpf::{KernelCounters, Loaded, ProcessFilter, Tracer},
    metrics::{self, Metrics},
    plan::{
        capture::{self, CapturePlan},
        later::{self, Watch},
        links::AttachMode,
        load::located,
        probe::Probe,
        resolve::resolve_later,
    },
    spans::{
        ids::IdGenerator,
        pipeline::{Finished, Pipeline},
        resource::Resources,
        span::SpanAssembler,
    },
};

/// How `run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// The traced command's exit code (128 + signal if it was killed); 0 without a command.
    pub exit_code: i32,
}

/// What `run` is asked to do, from the command line.
#[derive(Debug, Clone)]
pub struct RunOptions<'a> {
    pub config_path: &'a Path,
    /// The command to start and trace; every process when empty.
    pub command: &'a [OsString],
    /// Overrides the config's `metrics.listen`.
    pub metrics_address: Option<SocketAddr>,
    /// How to attach uprobes; the best the kernel has when `None`.
    pub attach_mode: Option<AttachMode>,
    /// Where span lines go, overriding the stdout exporter's `file`.
    pub output: Option<&'a Path>,
}

/// Traces the functions in the config at `config_path`. With a `command`, traces only that
/// command's process, from its first instruction until it exits; without, traces every
/// process until SIGINT or SIGTERM.
pub async fn run(options: RunOptions<'_>) -> anyhow::Result<RunOutcome> {
    // The ring-buffer reader owns the symbolizer, which must stay on one thread.
    tokio::task::LocalSet::new().run_until(trace(options)).await
}

async fn trace(options: RunOptions<'_>) -> anyhow::Result<RunOutcome> {
    let RunOptions {
        config_path,
        command,
        metrics_address,
        attach_mode,
        output,
    } = options;
    let (mut config, resolved) = crate::plan::load::load(config_path)?;
    let room = later::room(&config, resolved.waiting);
    let mut functions = resolved.functions;
    if let Some(output) = output {
        let ExporterConfig::Stdout(stdout) = &mut config.exporter else {
            anyhow::bail!(
                "{}: -o {} writes span lines, but this config exports over OTLP \
                 (exporter.otlp)",
                config_path.display(),
                output.display()
            );
        };
        // Relative to where spanprobe was started, not to the config file.
        stdout.file = Some(Located::unplaced(std::path::absolute(output)?));
    }
    if !command.is_empty()
        && let Some((t, key)) = config.probes.iter().enumerate().find_map(|(t, target)| {
            let key = match (&target.pid, &target.container) {
                (Some(_), _) => "pid",
                (None, Some(_)) => "container",
                (None, None) => return None,
            };
            Some((t, key))
        })
    {
        anyhow::bail!(
            "{}: probes[{t}].{key}: cannot be used with a command: with a command only the \
             command's process is traced",
            config_path.display()
        );
    }
    if !command.is_empty()
        && let Some(t) = config
            .probes
            .iter()
            .position(|target| target.executable.is_some())
    {
        anyhow::bail!(
            "{}: probes[{t}].executable: names processes already running, and with a command \
             only the command's processes are traced: name its file with `binary:`",
            config_path.display()
        );
    }
    let program = command
        .first()
        .map(|p| child::find_program(p))
        .transpose()?;
    // Caught from here on, before anything is attached or started: a SIGINT or SIGTERM that
    // comes meanwhile ends the run cleanly once it can, instead of killing spanprobe with the
    // probes attached and the command left running untraced.
    let signals = SignalsInfo::<WithOrigin>::new([libc::SIGINT, libc::SIGTERM])?;
    // Built before attaching, so that an unusable destination is refused first; a span file
    // is emptied only once everything has started (below).
    let mut exporter = Exporter::from_config(&config.exporter, &config.base_dir)?;

    let filter = if command.is_empty() {
        ProcessFilter::All
    } else {
        ProcessFilter::Selected
    };
    tracing::debug!(functions = functions.len(), "loading and attaching");
    let started = std::time::Instant::now();
    // Every stage reads each function's captures from this one table, by function id.
    let mut plans = capture::plans(&functions, &config.sampler);
    let loaded = Loaded::load(
        &functions,
        &plans,
        filter,
        &config.limits,
        attach_mode,
        room,
    )?;
    let mut resources = Resources::new(config.service_name.clone(), &config.resource);
    // Forked now and held before exec: the probes can go in its processes only, and its
    // resource is known even if it is gone before its first span is read. Should anything
    // below fail, dropping it makes the child exit before it runs the command.
    // (`program` is there exactly when a command is.)
    let gated = match &program {
        None => None,
        Some(program) => {
            let gated = GatedChild::spawn(command).await?;
            resources.known(gated.pid().get(), program, command);
            Some(gated)
        }
    };
    let mut tracer = loaded.attach(&functions, &plans, gated.as_ref().map(GatedChild::pid))?;
    tracing::info!(
        probes = tracer.attached(),
        links = tracer.links(),
        functions = functions.len(),
        elapsed = ?started.elapsed(),
        "attached with {}",
        tracer.mode()
    );

    let metrics = Arc::new(Metrics::default());
    metrics
        .probes_attached
        .store(tracer.attached() as u64, Ordering::Relaxed);
    if let Some(address) = metrics_address.or(config.metrics_listen) {
        metrics::prometheus::serve(address, Arc::clone(&metrics))
            .await
            .with_context(|| format!("cannot serve metrics on {address}"))?;
        tracing::info!(%address, "serving metrics");
    }
    let settings = ExportSettings::from_config(&config.batch);
    let (queue, queued) = span_queue(settings.queue_size, Arc::clone(&metrics));
    let assembler = SpanAssembler::new(
        &functions,
        &plans,
        BootClock::sample(),
        IdGenerator::random(),
    );
    // Everything that can fail at start-up has succeeded: the previous capture can go.
    exporter.start()?;
    let export_task = spawn_export(exporter, queued, settings, Arc::clone(&metrics));
    let mut pipeline = Pipeline::new(
        &functions,
        &plans,
        assembler,
        resources,
        queue,
        Arc::clone(&metrics),
    );
    // Files of `executable:` targets that processes start later: the kernel tells of each
    // program started, and their functions reach the pipeline before their probes go in.
    let (exec_notices, mut execs) = mpsc::unbounded_channel();
    let (extend_pipeline, extensions) = std::sync::mpsc::channel::<Extension>();
    let mut watch = (room.functions > 0).then(|| {
        pipeline.send_exec_notices(exec_notices);
        Watch::new(&resolved.running_files)
    });
    let ring = tracer.take_events()?;
    let (stop_reader, stop) = oneshot::channel();
    let (ended_calls, ended) = mpsc::unbounded_channel();
    let reader = tokio::task::spawn_local(async move {
        let result = read_events(ring, stop, ended, |input| {
            while let Ok((functions, plans)) = extensions.try_recv() {
                pipeline.extend(&functions, &plans);
            }
            match input {
                Input::Record(record) => pipeline.handle(record),
                Input::Ended(event) => pipeline.handle_ended(event),
            }
        })
        .await;
        (result, pipeline.finish())
    });
    let mut later = Later {
        config: &config,
        config_path,
        functions: &mut functions,
        plans: &mut plans,
        pipeline: extend_pipeline,
        metrics: &metrics,
    };
    // A program started between the look at start and the exec program's attaching.
    if let Some(watch) = &mut watch {
        later
            .probe_new_files(watch, Look::Everyone, &mut tracer)
            .await;
    }
    // Goroutines are no threads: the calls they leave open when their process exits are ended
    // here, by a look at their stacks every second and once at the end.
    let end_goroutines = |tracer: &mut Tracer| match tracer
        .end_goroutines_of_exited_processes(orphans::process_runs)
    {
        Ok(events) => {
            for event in events {
                let _ = ended_calls.send(event);
            }
        }
        Err(error) => tracing::warn!("cannot end the calls of exited goroutines: {error}"),
    };

    let child = match gated {
        None => None,
        Some(gated) => Some(start_command(&mut tracer, gated, command).await?),
    };
    let ended = async {
        match child {
            None => {
                wait_for_termination(signals).await;
                Ok(0)
            }
            Some(child) => wait_for_command(child, signals).await,
        }
    };
    tokio::pin!(ended);
    // While tracing, the kernel's counters are copied into the metrics every second.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let exit_code = loop {
        let look_again = watch.as_ref().and_then(Watch::next_look);
        tokio::select! {
            code = &mut ended => break code?,
            _ = tick.tick() => {
                if let Ok(kernel) = tracer.counters() {
                    copy_kernel_counters(&metrics, &kernel);
                }
                end_goroutines(&mut tracer);
            }
            Some(pid) = execs.recv(), if watch.is_some() => {
                if let Some(watch) = &mut watch {
                    later.probe_new_files(watch, Look::Process(pid), &mut tracer).await;
                }
            }
            () = sleep_until(look_again), if look_again.is_some() => {
                if let Some(watch) = &mut watch {
                    later.probe_new_files(watch, Look::Again, &mut tracer).await;
                }
            }
        }
    };

    // Detach first, so that no event can come after the final drain; the reader keeps draining
    // meanwhile. Detaching waits on the kernel (a grace period per link, or per perf-event
    // uprobe), off the async threads.
    let started = std::time::Instant::now();
    let mut tracer = tokio::task::spawn_blocking(move || {
        tracer.detach();
        tracer
    })
    .await
    .context("detaching the probes")?;
    tracing::debug!(elapsed = ?started.elapsed(), "detached");
    end_goroutines(&mut tracer);
    // The reader drains the ring buffer completely before returning.
    tracing::debug!("draining the ring buffer");
    let _ = stop_reader.send(());
    let (read_result, finished) = reader.await.context("ring-buffer reader panicked")?;
    let Finished {
        mut summary,
        called,
    } = finished;
    read_result.context("reading the ring buffer")?;
    copy_kernel_counters(&metrics, &tracer.counters()?);
    let in_progress = tracer.calls_in_progress()?;
    drop(tracer);
    let exported = export_task.await.context("export task panicked")?;
    // Every stage has finished counting: the ledger is final.
    eprint!("{}", summary.table(&exported));
    metrics::report::log(&metrics);
    for warning in uncalled::warnings(&functions, &called, program.as_deref()) {
        tracing::warn!("{warning}");
    }
    if in_progress > 0 {
        tracing::warn!(
            "{in_progress} calls were still in progress at shutdown and are not exported"
        );
    }
    Ok(RunOutcome { exit_code })
}

/// Which processes to look at for new files.
enum Look {
    Everyone,
    /// One that has just started a program.
    Process(u32),
    /// Those looked at before whose libraries were not loaded yet.
    Again,
}

/// Waits until `at`; never, without one.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Functions of a file found after start, and their captures, for the pipeline.
type Extension = (Vec<Probe>, Vec<CapturePlan>);

/// What probing files found after start changes: the function table, grown.
struct Later<'a> {
    config: &'a Config,
    config_path: &'a Path,
    functions: &'a mut Vec<Probe>,
    plans: &'a mut Vec<CapturePlan>,
    pipeline: std::sync::mpsc::Sender<Extension>,
    metrics: &'a Metrics,
}

impl Later<'_> {
    /// Probes the new files of `executable:` targets `look` finds. What cannot be probed is
    /// said and left: the rest goes on.
    async fn probe_new_files(&mut self, watch: &mut Watch, look: Look, tracer: &mut Tracer) {
        let found = match look {
            Look::Everyone => watch.look_at(self.config, None, self.functions),
            Look::Process(pid) => watch.look_at(self.config, Some(pid), self.functions),
            Look::Again => watch.look_again(self.config, self.functions),
        };
        for new in found {
            let path = new.file.path.clone();
            let pids = new.file.pids.clone();
            let (target, key) = (new.target, new.file.key);
            // Its processes exited before it was probed (the path through their root is gone
            // with them): the next process that runs it tries again.
            let gone = |watch: &mut Watch| {
                if !path.exists() {
                    watch.forget(target, key);
                }
            };
            // Off this thread, which also drains the ring buffer: a large binary's symbols and
            // DWARF take a fraction of a second to read.
            let config = self.config.clone();
            let first_id = self.functions.len();
            let found = tokio::task::spawn_blocking(move || {
                resolve_later(&config, new.target, new.file, new.processes, first_id)
            })
            .await;
            let functions = match found {
                Ok(Ok(functions)) => functions,
                Err(panicked) => {
                    tracing::warn!("resolving {} panicked: {panicked}", path.display());
                    continue;
                }
                Ok(Err(errors)) => {
                    for error in errors {
                        let problem = error.to_problem();
                        tracing::warn!(
                            "cannot probe {} of pids {pids:?}: {}",
                            path.display(),
                            located(self.config_path, &problem)
                        );
                    }
                    gone(watch);
                    continue;
                }
            };
            let first = self.functions.len();
            self.functions.extend(functions);
            *self.plans = capture::plans(self.functions, &self.config.sampler);
            // Ids are never taken back: the pipeline has the functions from here on, probed
            // or not.
            let extension = (
                self.functions[first..].to_vec(),
                self.plans[first..].to_vec(),
            );
            let _ = self.pipeline.send(extension);
            match tracer.grow(self.functions, self.plans, first) {
                Ok(probes) => {
                    self.metrics
                        .files_attached_later
                        .fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .probes_attached
                        .store(tracer.attached() as u64, Ordering::Relaxed);
                    tracing::info!(
                        file = %path.display(),
                        ?pids,
                        probes,
                        functions = self.functions.len() - first,
                        "probing a file a process started running"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        "cannot probe {} of pids {pids:?}: {:#}",
                        path.display(),
                        anyhow::Error::from(error)
                    );
                    gone(watch);
                }
            }
        }
    }
}

/// Starts `command`, forked as `gated`, with its pid in the filter.
async fn start_command(
    tracer: &mut Tracer,
    gated: GatedChild,
    command: &[OsString],
) -> anyhow::Result<RunningChild> {
    tracer.trace_process(gated.pid())?;
    let program = command.first().cloned().unwrap_or_default();
    Ok(gated.start(&program).await?)
}

/// Forwards SIGINT/SIGTERM sent to spanprobe on to the command, and returns its exit code
/// once it has exited.
async fn wait_for_command(
    child: RunningChild,
    mut signals: SignalsInfo<WithOrigin>,
) -> anyhow::Result<i32> {
    let pid = child.pid();
    let wait = child.wait();
    tokio::pin!(wait);
    let status = loop {
        tokio::select! {
            status = &mut wait => break status.context("waiting for the traced command")?,
            Some(origin) = signals.next() => {
                if forwarded(origin.cause) {
                    child::signal(pid, origin.signal);
                }
            }
        }
    };
    Ok(child::exit_code(status))
}

/// Whether a signal spanprobe got should be passed on to the command. The command shares
/// spanprobe's process group, so what the kernel raised for the group (a terminal's Ctrl-C)
/// reached it already; passing that on would deliver it twice.
fn forwarded(cause: Cause) -> bool {
    !matches!(cause, Cause::Kernel)
}

/// Returns at the first SIGINT or SIGTERM, whoever sent it.
async fn wait_for_termination(mut signals: SignalsInfo<WithOrigin>) {
    signals.next().await;
}

/// Copies the kernel side's counters into the ledger.
fn copy_kernel_counters(metrics: &Metrics, kernel: &KernelCounters) {
    for counter in Counter::ALL {
        metrics.set_kernel(counter, kernel.get(counter));
    }
}

#[cfg(test)]
mod tests {
    use signal_hook::low_level::siginfo::Sent;

    use super::*;

    #[test]
    fn only_signals_sent_to_spanprobe_are_passed_on() {
        assert!(
            !forwarded(Cause::Kernel),
            "a terminal's Ctrl-C reached the command"
        );
        assert!(forwarded(Cause::Sent(Sent::User)), "kill(1)");
        assert!(forwarded(Cause::Sent(Sent::TKill)));
        assert!(forwarded(Cause::Unknown));
    }
}
