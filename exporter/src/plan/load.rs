//! A config loaded and every probe resolved: where `run` and `check` start. The config's own
//! problems and its probes' (a missing binary, an unknown symbol) are reported in one list.

use std::path::Path;

use spanprobe_config::{Config, ConfigError, Position, Problem};

use crate::plan::{
    error::ResolveError,
    resolve::{Resolved, resolve},
};

/// Loads the config at `config_path` and resolves its probes, or says every problem found.
/// What resolution noticed without it being wrong (see [`Resolved::notes`]) is logged.
pub fn load(config_path: &Path) -> Result<(Config, Resolved), ConfigError> {
    let (config, resolved) = load_resolved(config_path)?;
    for note in &resolved.notes {
        tracing::warn!("{}", located(config_path, note));
    }
    Ok((config, resolved))
}

/// [`load`], with the notes returned rather than logged (`check` shows them).
pub fn load_resolved(config_path: &Path) -> Result<(Config, Resolved), ConfigError> {
    let mut resolved = Resolved::default();
    let config = spanprobe_config::load_with(config_path, |config| match resolve(config) {
        Ok(all) => {
            resolved = all;
            Vec::new()
        }
        Err(errors) => errors.iter().map(ResolveError::to_problem).collect(),
    })?;
    Ok((config, resolved))
}

/// `problem` as a line naming the config file: `file:line:column: field: message`.
pub fn located(config_path: &Path, problem: &Problem) -> String {
    let separator = if problem.position == Position::default() {
        " "
    } else {
        ""
    };
    format!("{}:{separator}{problem}", config_path.display())
}
