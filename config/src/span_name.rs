//! Span names with placeholders: `"{funcname}"` or `"query {db.name}"` is filled, for each span,
//! with the captured argument of that name.

/// A piece of a span name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamePart<'a> {
    Text(&'a str),
    /// `{name}`: the captured argument (attribute) `name`.
    Argument(&'a str),
}

/// The pieces of `name`; a `{` without its `}` is text.
pub fn name_parts(name: &str) -> Vec<NamePart<'_>> {
    let mut parts = Vec::new();
    let mut rest = name;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|close| open + close) else {
            break;
        };
        if open > 0 {
            parts.push(NamePart::Text(&rest[..open]));
        }
        parts.push(NamePart::Argument(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(NamePart::Text(rest));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_placeholders() {
        assert_eq!(name_parts("query"), [NamePart::Text("query")]);
        assert_eq!(name_parts("{funcname}"), [NamePart::Argument("funcname")]);
        assert_eq!(
            name_parts("call {module}.{name} end {"),
            [
                NamePart::Text("call "),
                NamePart::Argument("module"),
                NamePart::Text("."),
                NamePart::Argument("name"),
                NamePart::Text(" end {"),
            ]
        );
    }
}
