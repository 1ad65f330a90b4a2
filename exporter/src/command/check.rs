//! `spanprobe check`: validate a config and resolve every probe, as `run` would, and show what
//! would be attached. Needs no privileges.

use std::{fmt::Write as _, path::Path, time::Duration};

use spanprobe_config::{
    ArgSpec, ExporterConfig, Keep, LenArg, OtlpProtocol, ReadAt, StdoutFormat, TraceContextFormat,
    TraceContextSpec,
};

use crate::{
    binary::frame_pointers::FramePointers,
    export::endpoint_tls,
    kernel::{
        bpf::{Loaded, LoadedProgram, ProcessFilter},
        features,
        trap_cost::single_step_cost,
    },
    plan::{
        capture::plans,
        kind,
        links::{AttachMode, COMMAND_TREE_PROBES, links, probe_count},
        load::{load_resolved, located},
        probe::{Probe, StackUnwind},
        resolve::Resolved,
    },
};

/// `check --load`: the programs are loaded into the kernel too.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadCheck {
    /// The attach mode to load for; as `run` picks it when `None`.
    pub attach: Option<AttachMode>,
}

/// Loads and resolves the config, and with `load_check` loads its programs into the kernel;
/// returns the report to print.
pub fn check(config_path: &Path, load_check: Option<LoadCheck>) -> anyhow::Result<String> {
    let (
        config,
        Resolved {
            functions,
            notes,
            waiting,
            ..
        },
    ) = load_resolved(config_path)?;
    if let ExporterConfig::Otlp(otlp) = &config.exporter {
        endpoint_tls(otlp, &config.base_dir)?;
    }
    // Measured only when some function pays it: a fraction of a second of real traps.
    let step_cost = functions
        .iter()
        .any(|function| function.single_stepped.is_some())
        .then(|| match single_step_cost() {
            Ok(cost) => Some(cost),
            Err(error) => {
                tracing::warn!("cannot measure what a single-stepped instruction costs: {error}");
                None
            }
        })
        .flatten();
    let mut out = report(config_path, &functions, step_cost);
    for note in &notes {
        let _ = writeln!(out, "note: {}", located(config_path, note));
    }
    let _ = writeln!(out, "spans go to {}", describe_exporter(&config.exporter));
    if let Some(LoadCheck { attach }) = load_check {
        let plans = plans(&functions, &config.sampler);
        // As `run` with a command loads them: the fork program too, and the pid filter's code.
        let loaded = Loaded::load(
            &functions,
            &plans,
            ProcessFilter::Selected,
            &config.limits,
            attach,
            crate::plan::later::room(&config, waiting),
        )?;
        out.push_str(&load_report(
            &features::release(),
            loaded.mode(),
            loaded.programs(),
        ));
    }
    Ok(out)
}

/// What `check --load` adds: the kernel, and each program it verified with the time it took.
fn load_report(release: &str, mode: AttachMode, programs: &[LoadedProgram]) -> String {
    let mut out = format!(
        "Linux {release} verified {} eBPF program{} for {mode}:\n",
        programs.len(),
        if programs.len() == 1 { "" } else { "s" }
    );
    for program in programs {
        let verified = program
            .verified
            .map(|count| format!("{count} instructions verified, "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} ({verified}{} ms)",
            program.name,
            program.took.as_millis()
        );
    }
    out
}

/// One line per binary, then one per function: span name, symbol, address, offset, captures;
/// `step_cost` is what a single-stepped first instruction costs per call on this machine.
pub fn report(config_path: &Path, functions: &[Probe], step_cost: Option<Duration>) -> String {
    let mut out = String::new();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let sites = functions.iter().filter(|f| f.kind.is_usdt()).count();
    let helpers = functions.iter().filter(|f| !f.kind.makes_spans()).count();
    let calls = functions.len() - sites - helpers;
    let mut what = Vec::new();
    if calls > 0 || sites == 0 {
        what.push(plural(calls, "function", "functions"));
    }
    if sites > 0 {
        what.push(plural(sites, "USDT site", "USDT sites"));
    }
    let _ = writeln!(
        out,
        "{}: ok, {} to probe",
        config_path.display(),
        what.join(" and ")
    );
    // Sampling changes no link: the default sampler serves.
    let plans = plans(functions, &Default::default());
    let multi = links(functions, &plans, AttachMode::Multi);
    let probes = probe_count(&multi);
    let with_command = if probes <= COMMAND_TREE_PROBES {
        "in its processes only, as perf events".to_owned()
    } else {
        format!(
            "through the links too, where the kernel has them (more than \
             {COMMAND_TREE_PROBES} probes)"
        )
    };
    let _ = writeln!(
        out,
        "run attaches {probes} uprobes through {} uprobe_multi link{} ({} perf events where the \
         kernel has no such links); with a command, {with_command}",
        multi.len(),
        if multi.len() == 1 { "" } else { "s" },
        links(functions, &plans, AttachMode::PerfEvent).len(),
    );
    let mut binary = None;
    let step_cost_text = step_cost.map_or_else(String::new, |cost| {
        format!(" ({:.1} µs here)", cost.as_secs_f64() * 1e6)
    });
    for function in functions {
        if binary != Some(&function.binary) {
            binary = Some(&function.binary);
            let _ = writeln!(out, "{}", function.binary.display());
        }
        if let Some(line) = kind::site_line(function, &step_cost_text) {
            let _ = writeln!(out, "{line}");
            continue;
        }
        let span_name = function
            .spec
            .span_name
            .as_deref()
            .unwrap_or(&function.symbol);
        let address = function
            .address
            .map_or("-".to_owned(), |a| format!("{a:#x}"));
        let _ = write!(
            out,
            "  {span_name}: {} at address {address}, file offset {:#x}",
            function.symbol, function.file_offset
        );
        if let Some(skipped) = kind::skipped(function) {
            let _ = write!(out, " ({skipped})");
        }
        if let Some(processes) = &function.processes {
            let _ = write!(out, ", {processes}");
        }
        out.push_str(&kind::clause(function, functions));
        if let Some(semaphore) = function.semaphore {
            let _ = write!(out, ", semaphore at file offset {semaphore:#x}");
        }
        if let Some(instruction) = &function.single_stepped {
            let cost = step_cost.map_or_else(String::new, |cost| {
                format!(", {:.1} µs here", cost.as_secs_f64() * 1e6)
            });
            let _ = write!(
                out,
                ", first instruction `{instruction}` single-stepped by the kernel (a second \
                 trap per call{cost}, inside the span)"
            );
            if let Some(stays) = &function.stays {
                let _ = write!(out, ", not moved: {stays}");
            }
        }
        let args: Vec<_> = function
            .spec
            .args
            .iter()
            .map(|a| describe_arg(a, function))
            .collect();
        if !args.is_empty() {
            let _ = write!(out, "; args {}", args.join(", "));
        }
        if let Some(context) = &function.spec.trace_context {
            let _ = write!(out, "; {}", describe_context(context, function));
        }
        let keeping = describe_keeping(function);
        if !keeping.is_empty() {
            let _ = write!(out, "; {}", keeping.join(", "));
        }
        if let Some(ret) = &function.spec.return_value {
            let _ = write!(
                out,
                "; return {}: {}",
                ret.attribute_name(),
                ret.value_type()
            );
            if ret.enumerators.is_some() {
                out.push_str(" named by its enumerators");
            }
            out.push_str(&describe_chain(
                ret.path.as_deref(),
                ret.offsets.as_deref(),
                "RAX",
            ));
            if let Some(condition) = ret.error_when {
                let _ = write!(out, " (error when {condition})");
            }
        }
        out.push('\n');
    }
    out
}

/// Where spans go, as the config (and the `OTEL_*` variables) say.
fn describe_exporter(exporter: &ExporterConfig) -> String {
    match exporter {
        ExporterConfig::Stdout(stdout) => {
            let format = match stdout.format {
                StdoutFormat::Text => "lines",
                StdoutFormat::Json => "JSON lines",
            };
            match &stdout.file {
                Some(file) => format!("{} ({format})", file.display()),
                None => format!("standard error ({format})"),
            }
        }
        ExporterConfig::Otlp(otlp) => {
            let protocol = match otlp.protocol {
                OtlpProtocol::Grpc => "gRPC",
                OtlpProtocol::HttpProtobuf => "HTTP",
            };
            format!("{} (OTLP over {protocol})", otlp.endpoint_in_use())
        }
    }
}

/// What decides which of a function's calls are kept, and what a span carries besides its
/// arguments: its stack, its sampling and its shortest duration, when set.
fn describe_keeping(function: &Probe) -> Vec<String> {
    let spec = &function.spec;
    let mut keeping = Vec::new();
    if let Some(when) = &spec.when {
        let conditions: Vec<String> = when
            .iter()
            .map(|(name, condition)| format!("{name} {condition}"))
            .collect();
        keeping.push(format!(
            "traced only when {} (decided in the kernel at entry, before any memory is read; \
             the calls nested in one left out are left out too)",
            conditions.join(" and ")
        ));
    }
    if let Some(unwind) = function.unwind {
        let how = match unwind {
            StackUnwind::FramePointers(FramePointers::Omitted) => {
                "walked by frame pointers, which this binary's code omits: it stops short, \
                 marked truncated (`unwind: dwarf` unwinds it whole)"
                    .to_owned()
            }
            StackUnwind::FramePointers(_) => "walked by frame pointers".to_owned(),
            StackUnwind::Window { bytes, picked } => format!(
                "unwound in userspace by the unwind tables from {bytes} bytes of stack copied at \
                 entry{}",
                if picked {
                    " (this binary's code omits frame pointers)"
                } else {
                    ""
                }
            ),
        };
        keeping.push(format!(
            "stack of up to {} frames, {how}",
            function.stack_frames
        ));
    }
    if let Some(rate) = &spec.sample_rate {
        keeping.push(format!("sample_rate {}", rate.value));
    }
    let mut rules = Vec::new();
    if let Some(min) = &spec.min_duration {
        rules.push(format!(
            "spans shorter than {}",
            humantime::format_duration(min.value)
        ));
    }
    if spec.keep.value == Keep::Errors {
        rules.push("spans of calls that did not fail".to_owned());
    }
    if !rules.is_empty() {
        keeping.push(format!(
            "{} dropped (with the spans under them; decided in the kernel when a call with no \
             probed callee returns, otherwise once its trace is whole)",
            rules.join(" and ")
        ));
    }
    keeping
}

fn describe_context(context: &TraceContextSpec, function: &Probe) -> String {
    let at = |index: Option<u8>| {
        index.map_or_else(|| "?".to_owned(), |i| function.arg_location(i).to_string())
    };
    match context.format {
        TraceContextFormat::Traceparent => {
            format!("trace context: traceparent ({})", at(context.arg))
        }
        TraceContextFormat::Ids => format!(
            "trace context: trace id ({}), parent span id ({})",
            at(context.trace_id_arg),
            at(context.span_id_arg)
        ),
    }
}

fn describe_arg(arg: &ArgSpec, function: &Probe) -> String {
    let place = function.arg_location(arg.index);
    let mut size = arg
        .value_type()
        .describe_read(arg.memory_len(), arg.len_arg.is_some());
    if arg.enumerators.is_some() {
        size.push_str(" named by its enumerators");
    }
    match arg.len_arg {
        Some(LenArg::Arg(count)) => {
            size.push_str(&format!(" counted by {}", function.arg_location(count)));
        }
        Some(LenArg::Return) => size.push_str(" counted by the return value"),
        Some(LenArg::Behind(count)) => size.push_str(&format!(
            " counted by the size_t {} points to",
            function.arg_location(count)
        )),
        Some(LenArg::Beside) => size.push_str(" counted by the length beside its pointer"),
        None => {}
    }
    let chain = describe_chain(
        arg.path.as_deref(),
        arg.offsets.as_deref(),
        &place.to_string(),
    );
    let when = match arg.at {
        _ if !arg.value_type().is_memory() => "",
        ReadAt::Return => ", read at return",
        ReadAt::Entry if fills_buffers(&function.symbol) => {
            ", read at entry: before the call writes it, if it is the buffer the call fills \
             (`at: return` reads what it wrote)"
        }
        // The default, said only where it is likely a mistake.
        ReadAt::Entry => "",
    };
    format!(
        "{}: {}{size}{chain}{when}",
        arg.attribute_name(),
        arg.value_type()
    )
}

/// Whether a function's name says it fills a buffer it is given, as `read`, `recv`,
/// `SSL_read`, `fread` and `recvmsg` do: a buffer read at its entry holds what was there before.
fn fills_buffers(symbol: &str) -> bool {
    let name = symbol.to_ascii_lowercase();
    name.contains("read") || name.contains("recv")
}

/// Where a value is read: at the end of its chain of pointers from `place`, or `place` itself.
fn describe_chain(path: Option<&str>, offsets: Option<&[i32]>, place: &str) -> String {
    match (path, offsets) {
        (Some(path), Some(offsets)) => format!(" at {path} (offsets {offsets:?} from {place})"),
        (None, Some(offsets)) => format!(" at offsets {offsets:?} from {place}"),
        _ => format!(" ({place})"),
    }
}
