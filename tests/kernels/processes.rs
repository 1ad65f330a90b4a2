//! calls.c's chain where it runs: on one thread, with every attach mode; on three threads (and
//! there with keep rules); in a shell's children and a child forked without exec.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde_json::json;

use crate::{
    chain::{Chain, chain_functions, chains},
    checks::{assert_all_exported, assert_attached, line_of, printed_pid, printed_pids},
    support::{
        self,
        scenario::{Workdir, named},
        vm::Case,
    },
    traced::{functions_config, traced},
};

/// outer(1) -> middle -> inner(2), with their arguments and return values and where DWARF
/// places them, attached as the kernel allows or, with `perf_event`, with
/// `--attach perf-event`.
pub fn nesting(dir: &Workdir, calls: &Path, perf_event: bool) -> Case {
    let (name, file, options): (&str, &str, &[&str]) = if perf_event {
        (
            "nesting, --attach perf-event",
            "nesting-perf-event",
            &["--attach", "perf-event"],
        )
    } else {
        ("nesting and return values", "nesting", &[])
    };
    let config = dir.write_named(file, &functions_config(calls, chain_functions()));
    let source = support::programs().join("calls.c");
    let lines: BTreeMap<&str, i64> = ["outer", "middle", "inner"]
        .into_iter()
        .map(|f| (f, line_of(&source, "", &format!("PROBED long {f}("))))
        .collect();
    traced(name, &config, calls)
        .command(format!("{} chain-wait", calls.display()))
        .options(options)
        .case(move |_, output, receiver| {
            output.assert_success();
            let pid = printed_pid(output, "calls");
            let spans = receiver.spans();
            assert_eq!(chains(&spans), [Chain::of(pid, pid, 1)]);
            for span in &spans {
                assert_eq!(span.str_attr("thread.name"), Some("calls"));
                assert_eq!(
                    span.str_attr("code.file.path"),
                    source.to_str(),
                    "{span:#?}"
                );
                assert_eq!(
                    span.int_attr("code.line.number"),
                    Some(lines[span.name()]),
                    "{span:#?}"
                );
            }
            assert_attached(output, perf_event, (6, 3));
            assert_all_exported(output, 3);
        })
}

/// `calls threads 3`: thread i calls outer(i * 1000 + j) for j below 20; each thread's calls
/// are trees of their own, on that thread, one trace each.
pub fn threads(dir: &Workdir, calls: &Path) -> Case {
    let config = dir.write_named("threads", &functions_config(calls, chain_functions()));
    traced("threads", &config, calls)
        .command(format!("{} threads 3", calls.display()))
        .case(|_, output, receiver| {
            output.assert_success();
            let pid = printed_pid(output, "calls");
            let spans = receiver.spans();
            let found = chains(&spans);
            let mut by_thread: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for chain in &found {
                assert_eq!(chain, &Chain::of(pid, chain.tid, chain.numbers[0]));
                by_thread
                    .entry(chain.tid)
                    .or_default()
                    .push(chain.numbers[0]);
            }
            assert!(!by_thread.contains_key(&pid), "the main thread calls none");
            let mut per_thread: Vec<Vec<i64>> = by_thread.into_values().collect();
            per_thread.iter_mut().for_each(|xs| xs.sort());
            per_thread.sort();
            let expected: Vec<Vec<i64>> = (1..=3)
                .map(|i| (0..20).map(|j| i * 1000 + j).collect())
                .collect();
            assert_eq!(per_thread, expected);
            let traces: BTreeSet<&[u8]> = spans.iter().map(|s| &s.span.trace_id[..]).collect();
            assert_eq!(traces.len(), 60);
            assert_all_exported(output, 180);
        })
}

/// `calls threads 3` with keep rules: inner, a leaf, keeps the calls that fail (those
/// returning above 6030, x above 3014), decided by the kernel at return; middle's hour-long
/// minimum is decided in userspace, since middle has a callee, and leaves every middle out.
pub fn keep_rules(dir: &Workdir, calls: &Path) -> Case {
    let mut functions = chain_functions();
    functions[1]["min_duration"] = json!("1h");
    functions[2]["keep"] = json!("errors");
    functions[2]["return"]["error_when"] = json!("> 6030");
    let config = dir.write_named("keep", &functions_config(calls, functions));
    traced("keep rules at return", &config, calls)
        .command(format!("{} threads 3", calls.display()))
        .case(|_, output, receiver| {
            output.assert_success();
            let spans = receiver.spans();
            assert_eq!(named(&spans, "outer").len(), 60);
            assert_eq!(spans.len(), 60, "outer alone: {spans:#?}");
            // The kernel sent the five failed inner calls alone; userspace then dropped each
            // with the middle above it, too short.
            for line in ["left_out_at_return=55", "below_min_duration=65"] {
                assert!(output.stderr.contains(line), "no {line} in\n{output}");
            }
        })
}

/// `run -- sh -c 'calls chain-wait; calls fork'`: the shell's two children (fork and exec),
/// and the child that `calls fork` forks without exec, each traced from its first call.
pub fn forked_children(dir: &Workdir, calls: &Path) -> Case {
    let config = dir.write_named("fork", &functions_config(calls, chain_functions()));
    let c = calls.display();
    traced("forked children", &config, calls)
        .command(format!("sh -c '{c} chain-wait; {c} fork'"))
        .case(|_, output, receiver| {
            output.assert_success();
            let [first, second] = printed_pids(&output.stdout, "calls")[..] else {
                panic!("two pids printed: {output}")
            };
            assert_ne!(first, second);
            let found = chains(&receiver.spans());
            // The child that `calls fork` forked: a third process, which calls outer(2).
            let forked = found
                .iter()
                .map(|chain| chain.pid)
                .find(|pid| ![first, second].contains(pid))
                .unwrap_or_else(|| panic!("no span of the forked child: {found:#?}"));
            let mut expected = vec![
                Chain::of(first, first, 1),
                Chain::of(second, second, 1),
                Chain::of(forked, forked, 2),
            ];
            expected.sort();
            assert_eq!(found, expected);
            assert_all_exported(output, 9);
        })
}
