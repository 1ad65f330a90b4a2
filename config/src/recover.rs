//! The diagnostic pass, run only when the normal pass failed: every schema error of the file,
//! then the semantic problems of the parts that did parse.
//!
//! The schema is deserialized from a [`Tree`] of the document; each error names the node it
//! came from, which is pruned before the next run, until the rest deserializes.

use crate::{
    Config, Problem,
    tree::{Lookup, ROOT, Tree},
    yaml::did_you_mean,
};

/// Every problem of `text`, sorted by position. `first` is the normal pass's error, which
/// stands as it is; `check` finds the semantic problems of a config; `lookup` expands
/// `${VAR}`.
pub(crate) fn every_problem(
    text: &str,
    first: Problem,
    lookup: Lookup<'_>,
    check: impl FnOnce(&mut Config) -> Vec<Problem>,
) -> Vec<Problem> {
    // Malformed YAML has no tree to search: the error met first stands alone.
    let Some(mut tree) = Tree::parse(text, lookup) else {
        return vec![first];
    };
    let mut problems = tree.unexpanded().to_vec();
    let mut config = None;
    // Each run either ends or prunes a node not pruned before, so the nodes bound the runs.
    for _ in 0..tree.len() {
        let error = match tree.deserialize::<Config>() {
            Ok(parsed) => {
                config = Some(parsed);
                break;
            }
            Err(error) => error,
        };
        let node = error.node.unwrap_or(ROOT);
        // What pruning caused (a missing field that was there) is not the user's mistake:
        // the node that lost a part goes too.
        if !tree.follows_from_pruning(node, &error) {
            problems.push(Problem::new(
                tree.position(node),
                tree.path(node),
                did_you_mean(&error.message),
            ));
        }
        if node == ROOT {
            break;
        }
        tree.prune(node);
    }
    // The normal pass's error is reported as it always was, in place of its twin.
    match problems.iter_mut().find(|p| p.field == first.field) {
        Some(same) => *same = first,
        None => problems.push(first),
    }
    if let Some(mut config) = config {
        let semantic = check(&mut config);
        problems.extend(semantic.into_iter().filter_map(|p| in_file(&tree, p)));
    }
    problems.sort_by_key(|p| p.position);
    problems
}

/// A semantic problem of the config deserialized from the pruned `tree`, with the field path
/// of the file (the config's lists hold only the elements kept). None when it is about a
/// pruned part, e.g. "at least one function is needed" when the only one was pruned.
fn in_file(tree: &Tree, mut problem: Problem) -> Option<Problem> {
    let (node, rest) = tree.follow(&problem.field)?;
    if rest.is_empty() && tree.lost_part(node) {
        return None;
    }
    problem.field = match tree.path(node) {
        "." => rest.trim_start_matches('.').to_owned(),
        path => format!("{path}{rest}"),
    };
    Some(problem)
}
