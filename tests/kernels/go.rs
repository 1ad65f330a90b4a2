//! A Go program: arguments under the register ABI, spans closed at the functions' `RET`s,
//! goroutines.

use std::collections::BTreeSet;

use serde_json::json;

use crate::{
    checks::assert_all_exported,
    support::{
        self,
        scenario::{Workdir, named},
        vm::Case,
    },
    traced::{functions_config, traced},
};

/// `tests/programs/go`, built with Debian's Go: main.handle's arguments under the register
/// ABI, and main.worker on three goroutines of its own, each span closed at the function's
/// `RET`.
pub fn goroutines(dir: &Workdir) -> Case {
    let binary = support::go_build(dir.path(), "go", "goapp");
    let functions = json!([
        { "symbol": "main.handle", "args": [
            { "index": 0, "name": "name", "type": "str" },
            { "index": 1, "name": "n", "type": "i64" },
            { "index": 2, "name": "flag", "type": "bool" },
        ] },
        { "symbol": "main.worker", "args": [{ "index": 0, "name": "n", "type": "i64" }] },
    ]);
    let config = dir.write_named("go", &functions_config(&binary, functions));
    traced("goroutines", &config, &binary).case(|_, output, receiver| {
        output.assert_success();
        assert_eq!(output.stdout, "16 1 <nil> not found 12\n");
        let spans = receiver.spans();
        for span in &spans {
            assert!(span.span.parent_span_id.is_empty(), "{span:#?}");
            assert_eq!(span.attr("spanprobe.entry_only"), None, "{span:#?}");
            assert_eq!(span.attr("spanprobe.incomplete"), None, "{span:#?}");
            assert!(span.span.end_time_unix_nano > span.span.start_time_unix_nano);
        }
        let [handle] = named(&spans, "main.handle")[..] else {
            panic!("one main.handle: {spans:#?}")
        };
        assert_eq!(
            (
                handle.str_attr("name"),
                handle.int_attr("n"),
                handle.bool_attr("flag"),
                handle.int_attr("goroutine.id"),
            ),
            (Some("alpha"), Some(2), Some(true), Some(1)),
            "main's goroutine is the first"
        );
        let mut workers: Vec<_> = named(&spans, "main.worker")
            .iter()
            .map(|w| (w.int_attr("n"), w.int_attr("goroutine.id")))
            .collect();
        workers.sort();
        assert_eq!(
            workers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)]
        );
        let goroutines: BTreeSet<_> = workers.iter().map(|(_, id)| *id).collect();
        assert_eq!(goroutines.len(), 3, "one goroutine each: {workers:?}");
        assert!(
            goroutines.iter().all(|id| id.is_some_and(|id| id > 1)),
            "{workers:?}"
        );
        assert_eq!(spans.len(), 4);
        assert_all_exported(output, 4);
    })
}

/// `tests/programs/gotypes`: Go values behind pointers, read by `path`: a `string` and a
/// `[]byte` by the length beside their pointer (the fixture's strings have no NUL between
/// them), a slice's element, and a result followed from RAX at the `RET`.
pub fn behind_pointers(dir: &Workdir) -> Case {
    let binary = support::go_build(dir.path(), "gotypes", "gotypes");
    let by_path = |name, path| json!({ "index": 0, "name": name, "path": path });
    let functions = json!([
        { "symbol": "main.(*order).ship", "args": [
            by_path("buyer", "->buyer->name"),
            by_path("raw", "->raw"),
            by_path("second.count", "->lines[1].Count"),
        ] },
        { "symbol": "main.deliver",
          "args": [by_path("to", ".to->name")],
          "return": { "name": "tier", "path": "->tier" } },
    ]);
    let config = dir.write_named("gotypes", &functions_config(&binary, functions));
    traced("go values behind pointers", &config, &binary).case(|_, output, receiver| {
        output.assert_success();
        let spans = receiver.spans();
        let [ship] = named(&spans, "main.(*order).ship")[..] else {
            panic!("one main.(*order).ship: {spans:#?}")
        };
        assert_eq!(
            (
                ship.str_attr("buyer"),
                ship.str_attr("raw"),
                ship.int_attr("second.count")
            ),
            (Some("ada"), Some("cafe"), Some(4))
        );
        let [deliver] = named(&spans, "main.deliver")[..] else {
            panic!("one main.deliver: {spans:#?}")
        };
        assert_eq!(
            (deliver.str_attr("to"), deliver.int_attr("tier")),
            (Some("ada"), Some(5))
        );
        assert_all_exported(output, 2);
    })
}

/// spawn: goroutines started inside traced calls, three deep and through a goroutine with no
/// span open, join the trace of the span they were started under.
pub fn goroutine_parents(dir: &Workdir) -> Case {
    let binary = support::go_build(dir.path(), "spawn", "spawn");
    let config = dir.write_named(
        "spawn",
        &functions_config(&binary, support::spawn::functions()),
    );
    traced("goroutine parents", &config, &binary).case(|_, output, receiver| {
        output.assert_success();
        assert_eq!(output.stdout, "spawn done\n");
        support::spawn::assert_goroutine_tree(&receiver.spans());
    })
}
