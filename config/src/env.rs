//! `${VAR}` and `${VAR:-default}` in config strings, expanded from the environment (for
//! secrets such as tokens in headers, which should not be written into the file).

/// Expands every `${VAR}` / `${VAR:-default}` in `text`; `$$` is a literal `$`.
/// `lookup` reads the environment (injected for tests).
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let expr = &body[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expr, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{expr}}}` is not a variable reference"));
        }
        match lookup(name).filter(|v| !v.is_empty() || default.is_none()) {
            Some(value) => out.push_str(&value),
            None => match default {
                Some(default) => out.push_str(default),
                None => return Err(format!("environment variable `{name}` is not set")),
            },
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand("Bearer ${TOKEN}", &env), Ok("Bearer s3cret".into()));
        assert_eq!(
            expand("${MISSING:-fallback}/x", &env),
            Ok("fallback/x".into())
        );
        assert_eq!(expand("${TOKEN:-unused}", &env), Ok("s3cret".into()));
        // As in the shell, `:-` also replaces an empty value.
        assert_eq!(expand("${EMPTY:-d}", &env), Ok("d".into()));
        assert_eq!(expand("${EMPTY}", &env), Ok(String::new()));
        assert_eq!(
            expand("cost: $$5, $HOME", &env),
            Ok("cost: $5, $HOME".into())
        );
        assert_eq!(expand("plain", &env), Ok("plain".into()));
    }

    #[test]
    fn reports_what_is_wrong() {
        assert_eq!(
            expand("${MISSING}", &env),
            Err("environment variable `MISSING` is not set".into())
        );
        assert_eq!(
            expand("${TOKEN", &env),
            Err("unclosed `${` in `${TOKEN`".into())
        );
        assert_eq!(
            expand("${A B}", &env),
            Err("`${A B}` is not a variable reference".into())
        );
    }
}
