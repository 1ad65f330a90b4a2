//! The `spanprobe` command line.

use std::{
    ffi::OsString,
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use spanprobe::{command, command::run::RunOptions, plan::links::AttachMode};
use tracing_subscriber::EnvFilter;

/// Turn functions of unmodified binaries into OpenTelemetry spans.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log level for spanprobe's own logs (overridden by RUST_LOG).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach the configured probes and export a span per call.
    ///
    /// With a command after `--`, start it, trace only it, and exit with its status once it
    /// exits. Without, trace every process until SIGINT or SIGTERM.
    Run {
        /// The YAML config naming binaries and functions.
        #[arg(long, short)]
        config: PathBuf,
        /// Serve spanprobe's own metrics (Prometheus text) here, e.g. 127.0.0.1:9464
        /// (overrides the config's `metrics.listen`).
        #[arg(long)]
        metrics_addr: Option<std::net::SocketAddr>,
        /// How to attach uprobes (default: uprobe_multi links where the kernel has them,
        /// perf events otherwise).
        #[arg(long, value_enum)]
        attach: Option<AttachMode>,
        /// Write span lines to this file instead of standard error (the stdout exporter's
        /// `file`).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Command to start and trace.
        #[arg(last = true)]
        command: Vec<OsString>,
    },
    /// Validate a config and resolve every probe without loading anything (no root needed);
    /// print what would be attached. Exit status 2 if anything is wrong.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Also load every eBPF program the config needs into this kernel, attaching nothing
        /// (needs what `run` needs): whether this kernel's verifier accepts them.
        #[arg(long)]
        load: bool,
        /// With --load: the attach mode to load the programs for, as `run --attach`.
        #[arg(long, value_enum, requires = "load")]
        attach: Option<AttachMode>,
    },
    /// List the functions of a binary (a path or a library name such as libc.so.6) that can
    /// be probed: address, size, demangled name.
    Symbols {
        binary: String,
        /// Only names matching this glob, e.g. 'myapp::db::*' (or 'postgresql:query__*').
        pattern: Option<String>,
        /// List the binary's USDT probes (`provider:name`) instead of its functions.
        #[arg(long)]
        usdt: bool,
    },
    /// Print a starter config for functions of a binary, with argument types from DWARF.
    Init {
        binary: String,
        /// Globs selecting functions (all functions when none).
        patterns: Vec<String>,
        /// Offer the members of the structs that parameters point to, as commented-out
        /// `path` captures.
        #[arg(long)]
        members: bool,
        /// Write a `usdt` section for the binary's USDT probes (PATTERNs match
        /// `provider:name`) instead of functions.
        #[arg(long, conflicts_with = "members")]
        usdt: bool,
    },
}

/// Exit status for a config that is unreadable or wrong.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("spanprobe={}", cli.log_level)))
        .unwrap_or_else(|_| EnvFilter::new("spanprobe=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spanprobe: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        Command::Run {
            config,
            command,
            metrics_addr,
            attach,
            output,
        } => runtime
            .block_on(spanprobe::command::run::run(RunOptions {
                config_path: config,
                command,
                metrics_address: *metrics_addr,
                attach_mode: *attach,
                output: output.as_deref(),
            }))
            .map(|outcome| outcome.exit_code),
        Command::Check {
            config,
            load,
            attach,
        } => print(command::check::check(
            config,
            load.then_some(command::check::LoadCheck { attach: *attach }),
        )),
        Command::Symbols {
            binary,
            pattern,
            usdt: false,
        } => print(command::symbols::list(binary, pattern.as_deref())),
        Command::Symbols {
            binary,
            pattern,
            usdt: true,
        } => print(command::symbols::list_usdt(binary, pattern.as_deref())),
        Command::Init {
            binary,
            patterns,
            usdt: true,
            ..
        } => print(command::init::starter_usdt_config(binary, patterns)),
        Command::Init {
            binary,
            patterns,
            members,
            usdt: false,
        } => print(command::init::starter_config(binary, patterns, *members)),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("{}", error_line(&error));
            if is_config_error(&error) {
                ExitCode::from(EXIT_BAD_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `spanprobe: ` and the error with its causes, once: a message that already names spanprobe
/// ("spanprobe needs CAP_BPF ...") is not prefixed again.
fn error_line(error: &anyhow::Error) -> String {
    let message = format!("{error:#}");
    if message.starts_with("spanprobe ") {
        message
    } else {
        format!("spanprobe: {message}")
    }
}

/// Prints a command's output; exit code 0. A reader that stopped early (`| head`) is no
/// error: what it wanted was printed.
fn print(output: anyhow::Result<String>) -> anyhow::Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output?.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("writing to standard output"))
        }
        _ => Ok(0),
    }
}

fn is_config_error(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<spanprobe_config::ConfigError>()
        .is_some()
        || error
            .downcast_ref::<spanprobe::export::OtlpError>()
            .is_some()
        || matches!(
            error.downcast_ref::<spanprobe::export::ExporterError>(),
            Some(spanprobe::export::ExporterError::Otlp(_))
        )
        || error
            .downcast_ref::<spanprobe::export::TlsError>()
            .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_spanprobe_once() {
        let needs = anyhow::anyhow!("spanprobe needs CAP_BPF and CAP_PERFMON; missing CAP_BPF");
        assert_eq!(
            error_line(&needs),
            "spanprobe needs CAP_BPF and CAP_PERFMON; missing CAP_BPF"
        );
        let other = anyhow::anyhow!("x").context("demo.yaml: cannot read config");
        assert_eq!(
            error_line(&other),
            "spanprobe: demo.yaml: cannot read config: x"
        );
    }
}
