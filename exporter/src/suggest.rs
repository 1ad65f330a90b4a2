//! "Did you mean": the names most like one that matched nothing, ranked one way for every
//! message that offers them (unknown functions, USDT probes, patterns).

/// Of `candidates`, the `count` whose `name` is most like `wanted`, best first: those similar
/// enough (Jaro-Winkler above 0.7), one per name, ties by name.
pub fn closest<T>(
    wanted: &str,
    candidates: impl IntoIterator<Item = T>,
    name: impl Fn(&T) -> &str,
    count: usize,
) -> Vec<T> {
    let mut scored: Vec<(f64, T)> = candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(wanted, name(&candidate)), candidate))
        .filter(|(score, _)| *score > 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| name(&a.1).cmp(name(&b.1))));
    scored.dedup_by(|a, b| name(&a.1) == name(&b.1));
    scored
        .into_iter()
        .take(count)
        .map(|(_, candidate)| candidate)
        .collect()
}

/// ` (closest: `a`, `b`)` for the three of `names` most like `wanted`, or nothing.
pub fn closest_hint(wanted: &str, names: &[String]) -> String {
    let closest: Vec<String> = closest(wanted, names, |name| name.as_str(), 3)
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect();
    if closest.is_empty() {
        String::new()
    } else {
        format!(" (closest: {})", closest.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_likeness_then_name_once_each() {
        let names = [
            "request__start",
            "request__done",
            "reqs",
            "unrelated",
            "request__start",
        ]
        .map(String::from);
        let found = closest("request_start", &names, |n| n.as_str(), 5);
        assert_eq!(found, ["request__start", "request__done", "reqs"]);
        assert_eq!(
            closest_hint("request_start", &names),
            " (closest: `request__start`, `request__done`, `reqs`)"
        );
        assert_eq!(closest_hint("zzz", &names), "");
    }
}
