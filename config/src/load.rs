//! Reading a config file: the one place that knows the YAML library, so it can be swapped.

use std::path::Path;

use crate::{
    AttributeValue, Config, ConfigError, ExporterConfig, Position, Problem, env, otel_env,
    validate::validate,
};

/// Reads, parses and validates the config at `path`. `${VAR}` references and the standard
/// `OTEL_*` variables are taken from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut config = parse(path, &text, &|name| std::env::var(name).ok())?;
    config.base_dir = path.parent().unwrap_or(Path::new("")).to_owned();
    Ok(config)
}

/// Parses and validates config text; `path` only names the source in errors, `lookup` is the
/// environment.
pub fn parse(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let mut config = deserialize(text).map_err(|problem| invalid(vec![problem]))?;
    let mut problems = expand_env(&mut config, lookup);
    problems.extend(otel_env::apply(&mut config, lookup));
    problems.extend(validate(&config));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
}

fn deserialize(text: &str) -> Result<Config, Problem> {
    let mut field = String::from(".");
    let mut options = serde_saphyr::options::Options::default();
    options.with_snippet = false;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|error| {
            field = field_path(error.path());
            error.into_inner()
        })
    });
    result.map_err(|error| {
        let position = error
            .location()
            .map(|l| Position {
                line: l.line() as u32,
                column: l.column() as u32,
            })
            .unwrap_or_default();
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

/// The library appends " at line L, column C"; the position is reported separately.
fn bare_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Adds "did you mean" to "unknown field `x`, expected one of a, b" and "unknown variant"
/// messages, naming the closest expected name.
fn did_you_mean(message: &str) -> String {
    let Some(rest) = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_owned();
    };
    let Some((given, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let expected = expected
        .trim_start_matches(", expected one of ")
        .trim_start_matches(", expected ");
    let closest = expected
        .split(", ")
        .map(|name| name.trim_matches('`'))
        .map(|name| (strsim::jaro_winkler(given, name), name))
        .filter(|(similarity, _)| *similarity >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, name)) => format!("{message} (did you mean `{name}`?)"),
        None => message.to_owned(),
    }
}

/// Expands `${VAR}` in the string values that commonly hold secrets or deployment details.
fn expand_env(config: &mut Config, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut expand =
        |value: &mut String, position: Position, field: String| match env::expand(value, lookup) {
            Ok(expanded) => *value = expanded,
            Err(message) => problems.push(Problem::new(position, field, message)),
        };
    if let Some(name) = &mut config.service_name {
        expand(name, Position::default(), "service_name".into());
    }
    for (key, value) in &mut config.resource {
        expand(value, Position::default(), format!("resource.{key}"));
    }
    if let ExporterConfig::Otlp(otlp) = &mut config.exporter {
        if let Some(endpoint) = &mut otlp.endpoint {
            expand(
                endpoint,
                Position::default(),
                "exporter.otlp.endpoint".into(),
            );
        }
        for (key, value) in &mut otlp.headers {
            expand(
                value,
                Position::default(),
                format!("exporter.otlp.headers.{key}"),
            );
        }
    }
    for (t, target) in config.probes.iter_mut().enumerate() {
        let position = target.binary.position;
        expand(
            &mut target.value.binary.value,
            position,
            format!("probes[{t}].binary"),
        );
        for (f, function) in target.value.functions.iter_mut().enumerate() {
            let position = function.position;
            for (key, value) in &mut function.value.attributes {
                if let AttributeValue::String(text) = value {
                    expand(
                        text,
                        position,
                        format!("probes[{t}].functions[{f}].attributes.{key}"),
                    );
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_field() {
        assert_eq!(
            did_you_mean("unknown field `functoins`, expected one of binary, pid, functions"),
            "unknown field `functoins`, expected one of binary, pid, functions (did you mean `functions`?)"
        );
        assert_eq!(
            did_you_mean("unknown field `zzz`, expected one of binary, functions"),
            "unknown field `zzz`, expected one of binary, functions"
        );
        assert_eq!(did_you_mean("invalid u8"), "invalid u8");
    }
}
