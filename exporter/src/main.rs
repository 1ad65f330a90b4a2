//! The `spanprobe` command line.

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
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
        /// Command to start and trace.
        #[arg(last = true)]
        command: Vec<OsString>,
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
        .with_target(false)
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spanprobe: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Run { config, command } => spanprobe::run::run(config, command).await,
        }
    });
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code.clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("spanprobe: {error:#}");
            if is_config_error(&error) {
                ExitCode::from(EXIT_BAD_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_config_error(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<spanprobe_config::ConfigError>()
        .is_some()
        || error
            .downcast_ref::<spanprobe::resolve::ResolveErrors>()
            .is_some()
        || error
            .downcast_ref::<spanprobe::export::OtlpError>()
            .is_some()
}
