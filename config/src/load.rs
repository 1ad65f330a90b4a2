//! Reading a config file: the one place that knows the YAML library, so it can be swapped.

use std::path::Path;

use crate::{Config, ConfigError, validate::validate};

/// Reads, parses and validates the config at `path`, resolving relative binary paths against
/// the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut config = parse(path, &text)?;
    let base = path.parent().unwrap_or(Path::new(""));
    for target in &mut config.probes {
        if target.binary.is_relative() {
            target.binary = base.join(&target.binary);
        }
    }
    Ok(config)
}

/// Parses and validates config text; `path` only names the source in errors.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        let location = inner.location();
        let message = bare_message(&inner.to_string(), &field);
        ConfigError::Parse {
            path: path.to_owned(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            field,
            message,
        }
    })?;
    let problems = validate(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }
}

/// The YAML library wraps messages in "<field>: ... at line L column C"; we report the field
/// and the position ourselves.
fn bare_message(message: &str, field: &str) -> String {
    let message = match message.split_once(": ") {
        Some((path, rest)) if field.starts_with(path) => rest,
        _ => message,
    };
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
