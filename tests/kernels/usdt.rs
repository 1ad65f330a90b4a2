//! USDT start/until pairs: `usdt.c`'s, guarded by semaphores, which uprobe_multi links and a
//! command's own probes set, so traced on every kernel with a command and refused with the
//! reason before anything is loaded with `--attach perf-event`; and a pair without
//! semaphore, traced everywhere.

use std::collections::BTreeSet;

use serde_json::json;

use crate::{
    checks::{assert_all_exported, assert_attached},
    support::{
        receiver::ReceivedSpan,
        scenario::{Workdir, by_id, named},
        usdt,
        vm::{Case, ScriptOutput},
    },
    traced::traced,
};

/// `tests/programs/usdt.c`'s probes, all guarded by semaphores: its request and step pairs,
/// `mark`, and `guarded`, which fires only while its semaphore is set. Two cases: attached in
/// the command's processes (traced on every kernel, Linux 6.1 included, which has no
/// uprobe_multi links), and with `--attach perf-event` (refused everywhere).
pub fn usdt_with_semaphores(dir: &Workdir) -> [Case; 2] {
    let binary = dir.c_program("usdt");
    let config = dir.write_named(
        "usdt",
        &json!({ "probes": [{ "binary": binary, "usdt": usdt::probes() }] }),
    );
    let traced_case =
        traced("usdt pairs with semaphores", &config, &binary).case(|_, output, receiver| {
            output.assert_success();
            check_usdt_spans(output, &receiver.spans());
        });
    let refused_case = traced("usdt semaphores, --attach perf-event", &config, &binary)
        .options(&["--attach", "perf-event"])
        .case(|_, output, receiver| {
            assert_semaphores_refused(output, "`--attach perf-event` attaches perf events");
            assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
        });
    [traced_case, refused_case]
}

/// usdt.c's spans, as tests/usdt.rs checks them: the requests with their arguments (a
/// register, a string behind one, an int in memory; at the end, a register or a constant),
/// the steps inside them, the marks (one outside any request) and `guarded`, which fired.
fn check_usdt_spans(output: &ScriptOutput, spans: &[ReceivedSpan]) {
    assert_eq!(output.stdout, "usdt 99 guarded 1\n");
    let ids = by_id(spans);
    let parent_id = |span: &ReceivedSpan| {
        ids.get(&span.span.parent_span_id)
            .map(|parent| (parent.name().to_owned(), parent.int_attr("id")))
    };
    let mut requests: Vec<_> = named(spans, "request")
        .iter()
        .map(|r| {
            assert!(r.span.parent_span_id.is_empty(), "{r:#?}");
            assert!(r.span.end_time_unix_nano > r.span.start_time_unix_nano);
            (
                r.int_attr("id"),
                r.str_attr("name"),
                r.int_attr("slot"),
                r.int_attr("done_id"),
            )
        })
        .collect();
    requests.sort();
    assert_eq!(
        requests,
        [
            (Some(1), Some("alpha"), Some(101), Some(1)),
            (Some(2), Some("beta"), Some(102), Some(2)),
            (Some(3), Some("gamma"), Some(103), Some(3)),
        ]
    );
    let request = |id: i64| Some(("request".to_owned(), Some(id)));
    let mut steps: Vec<_> = named(spans, "step")
        .iter()
        .map(|s| (s.int_attr("i"), parent_id(s), s.int_attr("result")))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            (Some(1), request(1), Some(10)),
            (Some(2), request(1), Some(20)),
            (Some(3), request(3), Some(30)),
            (Some(4), request(3), Some(40)),
        ]
    );
    let mut points: Vec<_> = spans
        .iter()
        .filter(|s| s.name().starts_with("app:"))
        .map(|p| {
            assert_eq!(p.bool_attr("spanprobe.entry_only"), Some(true));
            assert_eq!(p.span.start_time_unix_nano, p.span.end_time_unix_nano);
            let value = p.int_attr(if p.name() == "app:mark" {
                "seven"
            } else {
                "id"
            });
            (p.name(), value, parent_id(p))
        })
        .collect();
    points.sort();
    assert_eq!(
        points,
        [
            ("app:guarded", Some(1), request(1)),
            ("app:guarded", Some(2), request(2)),
            ("app:guarded", Some(3), request(3)),
            ("app:mark", Some(7), None),
            ("app:mark", Some(7), request(1)),
            ("app:mark", Some(7), request(2)),
            ("app:mark", Some(7), request(3)),
        ]
    );
    assert_eq!(spans.len(), 3 + 4 + 7);
    assert_all_exported(output, 14);
}

/// Asserts that spanprobe refused usdt.c's probes, which have semaphores, as perf-event
/// uprobes, before loading anything or starting the command: exit status 1, and its whole
/// stderr the refusal with `reason` (no warning that it would fall back to perf-event
/// uprobes first), naming the first 3 of the 8 sites guarded by a semaphore.
fn assert_semaphores_refused(output: &ScriptOutput, reason: &str) {
    assert_eq!(
        (output.status, output.timed_out, output.stdout.as_str()),
        (1, false, ""),
        "{output}"
    );
    let lines: Vec<&str> = output.stderr.lines().collect();
    let [refusal] = lines[..] else {
        panic!("not the refusal alone:\n{output}");
    };
    let sites = refusal
        .strip_prefix("spanprobe: USDT probes guarded by a semaphore (")
        .and_then(|rest| {
            rest.strip_suffix(&format!(
                " and 5 more) need uprobe_multi links or a command's own probes, which increment \
                 it: {reason}"
            ))
        })
        .unwrap_or_else(|| panic!("not the refusal: {refusal:?}\n{output}"));
    // "`app:NAME` at file offset 0x...", three distinct sites of the config's probes.
    let sites: BTreeSet<(&str, u64)> = sites
        .split(", ")
        .map(|site| {
            let (probe, offset) = site
                .strip_prefix("`app:")
                .and_then(|site| site.split_once("` at file offset 0x"))
                .unwrap_or_else(|| panic!("not a site: {site:?} in {refusal}"));
            let probes = [
                "request__start",
                "request__done",
                "step__start",
                "step__done",
                "mark",
                "guarded",
            ];
            assert!(probes.contains(&probe), "{site:?} in {refusal}");
            let offset = u64::from_str_radix(offset, 16)
                .unwrap_or_else(|_| panic!("not a file offset: {site:?} in {refusal}"));
            (probe, offset)
        })
        .collect();
    assert_eq!(sites.len(), 3, "{refusal}");
}

/// A request start/done pair without a semaphore, `tests/programs/plain_usdt.c`'s: it needs no
/// uprobe_multi link, so it is traced on every kernel (as perf-event uprobes before Linux 6.6).
pub fn usdt_without_semaphores(dir: &Workdir) -> Case {
    let binary = dir.c_program("plain_usdt");
    let usdt = json!([{
        "probe": "plain:request__start", "until": "plain:request__done", "span_name": "request",
        "args": [{ "index": 0, "name": "id" }],
        "until_args": [{ "index": 0, "name": "result" }],
    }]);
    let config = dir.write_named(
        "plain-usdt",
        &json!({ "probes": [{ "binary": binary, "usdt": usdt }] }),
    );
    traced("a usdt pair without semaphore", &config, &binary).case(|_, output, receiver| {
        output.assert_success();
        assert_eq!(output.stdout, "plain 60\n");
        let spans = receiver.spans();
        let mut requests: Vec<_> = spans
            .iter()
            .map(|r| {
                assert!(r.span.parent_span_id.is_empty(), "{r:#?}");
                assert!(r.span.end_time_unix_nano > r.span.start_time_unix_nano);
                assert_eq!(r.attr("spanprobe.entry_only"), None);
                (r.name(), r.int_attr("id"), r.int_attr("result"))
            })
            .collect();
        requests.sort();
        assert_eq!(
            requests,
            [
                ("request", Some(1), Some(10)),
                ("request", Some(2), Some(20)),
                ("request", Some(3), Some(30)),
            ]
        );
        // Two sites, one uprobe each.
        assert_attached(output, false, (2, 2));
        assert_all_exported(output, 3);
    })
}
