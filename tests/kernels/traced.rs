//! How a tracing scenario is written: a config probing a program's functions, and
//! `spanprobe run -- COMMAND` under it, exporting to the receiver of its case.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{
    receiver::Receiver,
    scenario::probe,
    vm::{self, Case, Machine, Script, ScriptOutput},
};

/// A tracing scenario's time limit: under TCG the slowest (Go) takes about 5 s, loading the
/// programs most of it.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(30);

/// A config probing `functions` of `binary`, exporting where `OTEL_EXPORTER_OTLP_ENDPOINT` says.
pub fn functions_config(binary: &Path, functions: Value) -> Value {
    json!({ "probes": [probe(binary, functions)] })
}

/// A scenario's script: `spanprobe run --config CONFIG OPTIONS... -- COMMAND` exporting to
/// the receiver of its case, with the config and the files the command runs placed in a guest.
pub struct Traced {
    name: String,
    config: PathBuf,
    options: Vec<String>,
    command: String,
    files: Vec<PathBuf>,
}

/// The script `name`, tracing `program` run alone (without arguments) under `config`.
pub fn traced(name: impl Into<String>, config: &Path, program: &Path) -> Traced {
    Traced {
        name: name.into(),
        config: config.to_owned(),
        options: Vec::new(),
        command: program.display().to_string(),
        files: vec![program.to_owned()],
    }
}

impl Traced {
    /// Runs `command`, shell text, rather than the program alone (which is still placed).
    pub fn command(mut self, command: impl Into<String>) -> Traced {
        self.command = command.into();
        self
    }

    /// Also places `path`, which the command needs besides the program.
    pub fn file(mut self, path: &Path) -> Traced {
        self.files.push(path.to_owned());
        self
    }

    /// Gives spanprobe `options` before `--`.
    pub fn options(mut self, options: &[&str]) -> Traced {
        self.options
            .extend(options.iter().map(|&option| option.to_owned()));
        self
    }

    /// The script, exporting to `receiver`.
    fn script(&self, receiver: &Receiver) -> Script {
        let options: String = self
            .options
            .iter()
            .map(|option| format!(" {option}"))
            .collect();
        let text = format!(
            "OTEL_EXPORTER_OTLP_ENDPOINT={} \"$SPANPROBE\" run --config {}{options} -- {}",
            vm::grpc_endpoint(receiver),
            self.config.display(),
            self.command
        );
        Script::new(&self.name, text)
            .file(&self.config)
            .with_files(&self.files)
            .time_limit(SCENARIO_LIMIT)
    }

    /// The case that runs the script and checks what came of it with `check`.
    pub fn case(
        self,
        check: impl Fn(&Machine, &ScriptOutput, &Receiver) + Send + Sync + 'static,
    ) -> Case {
        Case::new(move |receiver| self.script(receiver), check)
    }
}
