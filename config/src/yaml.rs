//! The YAML library's settings and its messages reworded, shared by the normal pass
//! ([`crate::load`]) and the diagnostic pass ([`crate::recover`] over [`crate::tree`]).

/// How the config is read, the same for the normal and the diagnostic pass.
pub(crate) fn yaml_options() -> serde_saphyr::options::Options {
    let mut options = serde_saphyr::options::Options::default();
    options.with_snippet = false;
    options
}

/// The library appends " at line L, column C"; the position is reported separately.
pub(crate) fn bare_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Adds "did you mean" to "unknown field `x`, expected one of a, b" and "unknown variant"
/// messages, naming the closest expected name.
pub(crate) fn did_you_mean(message: &str) -> String {
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
        .filter(|(similarity, _)| *similarity >= SIMILAR)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, name)) => format!("{message} (did you mean `{name}`?)"),
        None => message.to_owned(),
    }
}

/// How alike (Jaro-Winkler) a misspelt name and a field name are at least.
const SIMILAR: f64 = 0.8;

/// Whether `given` is likely a misspelling of the field `name`.
pub(crate) fn looks_like(given: &str, name: &str) -> bool {
    strsim::jaro_winkler(given, name) >= SIMILAR
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
