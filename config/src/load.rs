//! Reading a config file. The YAML library is known here, in [`crate::yaml`],
//! [`crate::located`] and in the diagnostic pass's [`crate::tree`], so it can be swapped.

use std::path::Path;

use crate::{
    Config, ConfigError, Position, Problem, otel_env, recover,
    tree::{Lookup, Tree},
    validate::{check_tls_files, validate},
    yaml::{bare_message, did_you_mean, yaml_options},
};

/// Reads, parses and validates the config at `path`. `${VAR}` references and the standard
/// `OTEL_*` variables are taken from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, |_| Vec::new())
}

/// [`load`], with `more` checks of every config that deserializes (e.g. that its binaries and
/// symbols exist), whose problems are reported with the config's own. Called at most once,
/// with `base_dir` set; its list indices are those of the config it is given.
pub fn load_with(
    path: &Path,
    more: impl FnOnce(&Config) -> Vec<Problem>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("")).to_owned();
    let lookup = |name: &str| std::env::var(name).ok();
    let config = checked(path, &text, &lookup, |config| {
        config.base_dir = base_dir;
        let mut problems = check_tls_files(config);
        problems.extend(more(config));
        problems
    })?;
    Ok(config)
}

/// Parses and validates config text; `path` only names the source in errors, `lookup` is the
/// environment.
pub fn parse(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    checked(path, text, lookup, |_| Vec::new())
}

fn checked(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    more: impl FnOnce(&mut Config) -> Vec<Problem>,
) -> Result<Config, ConfigError> {
    let check = |config: &mut Config| {
        let mut problems = check(config, lookup);
        // A field the config already faults (an empty `binary`) is not faulted twice.
        let more: Vec<_> = more(config)
            .into_iter()
            .filter(|new| problems.iter().all(|known| known.field != new.field))
            .collect();
        problems.extend(more);
        problems
    };
    let problems = match deserialize(text, lookup) {
        Ok(mut config) => {
            let mut problems = check(&mut config);
            if problems.is_empty() {
                return Ok(config);
            }
            problems.sort_by_key(|problem| problem.position);
            problems
        }
        Err(first) => recover::every_problem(text, first, lookup, check),
    };
    Err(ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// The semantic problems of a config that deserialized.
fn check(config: &mut Config, lookup: Lookup<'_>) -> Vec<Problem> {
    let mut problems = otel_env::apply(config, lookup);
    problems.extend(validate(config));
    problems
}

/// The normal pass: the first error stops it. A file with `${VAR}` in its values is read
/// through the [`Tree`], which expands them before their types are read.
fn deserialize(text: &str, lookup: Lookup<'_>) -> Result<Config, Problem> {
    if text.contains('$')
        && let Some(tree) = Tree::parse(text, lookup)
        && tree.has_expansions()
    {
        if let Some(unexpanded) = tree.unexpanded().first() {
            return Err(unexpanded.clone());
        }
        return tree.deserialize().map_err(|error| {
            let node = error.node.unwrap_or(crate::tree::ROOT);
            Problem::new(
                tree.position(node),
                tree.path(node),
                did_you_mean(&error.message),
            )
        });
    }
    let mut field = String::from(".");
    let result =
        serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(), |de| {
            serde_path_to_error::deserialize(de).map_err(|error| {
                field = field_path(error.path());
                error.into_inner()
            })
        });
    result.map_err(|error| {
        let position = error.location().map(Position::of).unwrap_or_default();
        let message = did_you_mean(&bare_message(&error.to_string()));
        Problem::new(position, field, message)
    })
}

/// The path as the user wrote it: without the `value` step that [`crate::Located`] adds.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } if key == "value" => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() { ".".to_owned() } else { out }
}
