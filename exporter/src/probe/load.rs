//! A config loaded and every probe resolved: where `run` and `check` start. The config's own
//! problems and its probes' (a missing binary, an unknown symbol) are reported in one list.

use std::path::Path;

use spanprobe_config::{Config, ConfigError};

use crate::probe::resolve::{ProbedFunction, ResolveError, resolve};

/// Loads the config at `config_path` and resolves its probes, or says every problem found.
pub fn load(config_path: &Path) -> Result<(Config, Vec<ProbedFunction>), ConfigError> {
    let mut functions = Vec::new();
    let config = spanprobe_config::load_with(config_path, |config| match resolve(config) {
        Ok(resolved) => {
            functions = resolved;
            Vec::new()
        }
        Err(errors) => errors.iter().map(ResolveError::to_problem).collect(),
    })?;
    Ok((config, functions))
}
