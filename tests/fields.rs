//! Values inside what an argument points to: struct members and array elements along chains
//! of pointers, by member names resolved from DWARF (`path`) or by byte offsets (`offsets`,
//! for binaries without debug info); a chain that meets an unreadable pointer gives the
//! attribute `<name>.fault` and never loses the span.

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::{
    receiver::ReceivedSpan,
    scenario::{Scenario, Workdir, assert_exit, assert_has_all, named, probe},
};

/// `tests/programs/fields.c`, built into `dir`.
fn fields_program(dir: &Path) -> std::path::PathBuf {
    support::compile_c(&support::programs().join("fields.c"), dir, "fields", &[])
}

/// A copy of `binary` without its DWARF, beside it.
fn without_debug_info(binary: &Path) -> std::path::PathBuf {
    let copy = binary.with_file_name("fields-nodebug");
    let status = std::process::Command::new("strip")
        .args(["--strip-debug", "-o"])
        .arg(&copy)
        .arg(binary)
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

/// One argument of `handle(struct request *r)` read at the end of `chain` (a `path` string or
/// an `offsets` list), as `ty`.
fn member(name: &str, ty: &str, chain: Value) -> Value {
    let key = if chain.is_string() { "path" } else { "offsets" };
    json!({ "index": 0, "name": name, "type": ty, key: chain })
}

/// The attributes of `handle`'s three calls (a full request, one whose pointers are NULL, and
/// NULL itself), in call order.
async fn handled(s: &Scenario, binary: &Path, args: Vec<Value>) -> Vec<ReceivedSpan> {
    let functions = json!([{ "symbol": "handle", "args": args, "return": { "type": "i32" } }]);
    let (_, spans) = s
        .trace(&s.config(binary, functions), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let mut calls: Vec<_> = named(&spans, "handle").into_iter().cloned().collect();
    calls.sort_by_key(|span| span.span.start_time_unix_nano);
    assert_eq!(calls.len(), 3);
    calls
}

fn check_values(calls: &[ReceivedSpan]) {
    let full = &calls[0];
    assert_eq!(full.int_attr("rid"), Some(7));
    assert_eq!(full.int_attr("user_id"), Some(42));
    assert_eq!(full.str_attr("user_name"), Some("alice"));
    assert_eq!(full.str_attr("path"), Some("/index.html"));
    assert_eq!(full.int_attr("tag2"), Some(30));
    // NULL members: those behind them fault, the others are read.
    let empty = &calls[1];
    assert_eq!(empty.int_attr("rid"), Some(8));
    for name in ["user_id", "user_name", "path"] {
        assert_eq!(empty.attr(name), None, "{name}");
        assert_eq!(
            empty.bool_attr(&format!("{name}.fault")),
            Some(true),
            "{name}"
        );
    }

    // NULL itself: every chain faults, the span is still there with its return value.
    let null = &calls[2];
    for name in ["rid", "user_id", "user_name", "path", "tag2", "kind"] {
        assert_eq!(
            null.bool_attr(&format!("{name}.fault")),
            Some(true),
            "{name}"
        );
    }
    assert_eq!(null.int_attr("return_value"), Some(-1));
}

#[tokio::test(flavor = "multi_thread")]
async fn members_by_path_from_dwarf() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = fields_program(s.path());
    let calls = handled(
        &s,
        &binary,
        vec![
            member("rid", "i32", json!("->rid")),
            member("user_id", "i64", json!("->user->id")),
            member("user_name", "str", json!("->user->name")),
            member("path", "str", json!("->path")),
            member("tag2", "i32", json!("->tags[2]")),
            member("kind", "i32", json!("->k")),
        ],
    )
    .await;
    check_values(&calls);
    assert_eq!(kinds(&calls), [Some(2), Some(1)]);
}

/// The `kind` of the first two calls, as numbers.
fn kinds(calls: &[ReceivedSpan]) -> [Option<i64>; 2] {
    [calls[0].int_attr("kind"), calls[1].int_attr("kind")]
}

#[tokio::test(flavor = "multi_thread")]
async fn members_by_offsets_without_debug_info() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = without_debug_info(&fields_program(s.path()));
    let calls = handled(
        &s,
        &binary,
        vec![
            member("rid", "i32", json!([0])),
            member("user_id", "i64", json!([8, 0])),
            member("user_name", "str", json!([8, 8])),
            member("path", "str", json!([16, 0])),
            member("tag2", "i32", json!([32])),
            member("kind", "i32", json!([40])),
        ],
    )
    .await;
    check_values(&calls);
    assert_eq!(kinds(&calls), [Some(2), Some(1)]);
    // By name, the same binary says why not and what to do instead.
    let functions = json!([{ "symbol": "handle", "args": [member("rid", "i32", json!("->rid"))] }]);
    let stderr = s
        .check(&json!({ "probes": [probe(&binary, functions)] }), 2)
        .await;
    assert!(
        stderr.contains(
            "cannot resolve `->rid`: the binary has no DWARF debug info: give the chain as \
             `offsets` instead"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_wrong_path_names_the_step_and_what_is_there() {
    let dir = Workdir::new();
    let binary = fields_program(dir.path());
    let functions = json!([{
        "symbol": "handle",
        "args": [
            member("a", "i64", json!("->usr->id")),
            member("b", "i32", json!("->rid->x")),
            member("c", "i32", json!("rid")),
        ],
    }]);
    let stderr = dir
        .check(&json!({ "probes": [probe(&binary, functions)] }), 2)
        .await;
    assert_has_all(
        &stderr,
        &[
            "args[0].path: ",
            "cannot resolve `->usr->id`: `->usr`: struct request has no member `usr`; it has rid, \
             user, path, tags, k",
            "args[1].path: ",
            "cannot resolve `->rid->x`: `->x`: int is not a pointer",
            "`rid` is not a path: unexpected `rid` (write `->member`, `.member` or `[n]` steps)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_objects_type_names_through_two_pointers() {
    support::needs_root!();
    // Debian's debug build of CPython (installed by scripts/setup.sh), a program no one here
    // wrote: PyObject_GetAttr(PyObject *v, PyObject *name), each object's type name at
    // v->ob_type->tp_name.
    let python = Path::new("/usr/bin/python3.11d");
    let s = Scenario::start().await;
    let functions = json!([{
        "symbol": "PyObject_GetAttr",
        "args": [
            { "index": 0, "name": "type", "type": "str", "path": "->ob_type->tp_name" },
            { "index": 1, "name": "name_type", "type": "str", "path": "->ob_type->tp_name" },
        ],
    }]);
    let (_, spans) = s
        .trace(
            &s.config(python, functions),
            &[python.to_str().unwrap(), "-c", "import json"],
        )
        .exits(0)
        .await;
    assert!(spans.len() > 100, "{}", spans.len());
    // Attribute names are strings; the objects include modules.
    assert!(
        spans
            .iter()
            .all(|span| span.str_attr("name_type") == Some("str"))
    );
    assert!(
        spans
            .iter()
            .any(|span| span.str_attr("type") == Some("module"))
    );
    assert!(spans.iter().all(|span| span.attr("type.fault").is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn types_are_inferred_from_dwarf() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = fields_program(s.path());
    let by_path = |name: &str, path: &str| json!({ "index": 0, "name": name, "path": path });
    let args = vec![
        by_path("rid", "->rid"),
        by_path("user_id", "->user->id"),
        by_path("user_name", "->user->name"),
        by_path("path", "->path"),
        by_path("tag2", "->tags[2]"),
        by_path("kind", "->k"),
    ];
    // check shows what DWARF said: a `char[16]` is a string of at most 16 bytes, read in place.
    let functions = json!([{ "symbol": "handle", "args": args.clone() }]);
    let report = s.check(&s.config(&binary, functions), 0).await;
    assert_has_all(
        &report,
        &[
            "rid: i32 at ->rid (offsets [0] from RDI)",
            "user_id: i64 at ->user->id (offsets [8, 0] from RDI)",
            "user_name: str up to 16 bytes at ->user->name (offsets [8, 8] from RDI)",
            "path: str up to 64 bytes at ->path (offsets [16, 0] from RDI)",
            "tag2: i32 at ->tags[2] (offsets [32] from RDI)",
            "kind: u32 named by its enumerators at ->k (offsets [40] from RDI)",
        ],
    );
    let calls = handled(&s, &binary, args).await;
    check_values(&calls);
    // An enum DWARF typed is shown by its enumerators' names.
    let kinds: Vec<_> = calls[..2].iter().map(|c| c.str_attr("kind")).collect();
    assert_eq!(kinds, [Some("KIND_PUT"), Some("KIND_GET")]);
    // A pointer member is read as the address it holds.
    let functions = json!([{ "symbol": "handle", "args": [by_path("user", "->user")] }]);
    let report = s.check(&s.config(&binary, functions), 0).await;
    assert!(report.contains("user: ptr at ->user (offsets [8] from RDI)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cpp_members_through_this_and_a_reference_and_rust_fields() {
    support::needs_root!();
    let s = Scenario::start().await;
    // C++: `this` is the first slot; `->side` is Square's member.
    let shapes = s.shapes();
    let functions = json!([
        { "symbol": "shapes::Square::scaled",
          "args": [
              { "index": 0, "name": "side", "path": "->side" },
              { "index": 1, "name": "k", "type": "i64" },
          ] },
        // A reference is followed as a pointer is.
        { "symbol": "shapes::perimeter", "args": [{ "index": 0, "name": "side", "path": "->side" }] },
    ]);
    let (_, spans) = s
        .trace(&s.config(&shapes, functions), &[shapes.to_str().unwrap()])
        .exits(0)
        .await;
    let [scaled] = named(&spans, "shapes::Square::scaled")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(
        (scaled.int_attr("side"), scaled.int_attr("k")),
        (Some(5), Some(7))
    );
    let [perimeter] = named(&spans, "shapes::perimeter")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(perimeter.int_attr("side"), Some(6));

    // Rust: the fields of a `&Reading`, wherever rustc placed them.
    let s = Scenario::start().await;
    let rusty = s.rusty(true);
    let functions = json!([{
        "symbol": "rusty::record",
        "args": [
            { "index": 0, "name": "sensor", "path": "->sensor" },
            { "index": 0, "name": "celsius", "path": "->celsius" },
            { "index": 0, "name": "valid", "path": "->valid" },
            { "index": 0, "name": "place", "path": "->place" },
            { "index": 0, "name": "raw", "path": "->raw" },
        ],
    }]);
    let (_, spans) = s
        .trace(&s.config(&rusty, functions), &[rusty.to_str().unwrap()])
        .exits(0)
        .await;
    let [record] = named(&spans, "rusty::record")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(record.int_attr("sensor"), Some(3));
    assert_eq!(record.int_attr("celsius"), Some(-21));
    assert_eq!(record.bool_attr("valid"), Some(true));
    // A `&str` and a `&[u8]` are read by the length beside their pointer, at entry.
    assert_eq!(record.str_attr("place"), Some("temperature"));
    assert_eq!(record.str_attr("raw"), Some("070809"));
    let at_return = json!([{
        "symbol": "rusty::record",
        "args": [{ "index": 0, "name": "place", "path": "->place", "at": "return" }],
    }]);
    assert_has_all(
        &s.check(&s.config(&rusty, at_return), 2).await,
        &[
            "functions[0].args[0].path: ",
            "cannot resolve `->place`: the value is struct &str, \
           whose bytes are read at entry with the length kept beside them: remove `at: return`",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn return_values_by_path_and_by_offsets() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = fields_program(s.path());
    // `lookup` returns a pointer to a struct or NULL; `make_reply` a struct in memory, whose
    // address comes back in RAX, so its members are `.member`.
    let functions = json!([
        { "symbol": "lookup", "args": [{ "index": 0, "name": "id", "type": "i64" }],
          "return": { "name": "user_id", "path": "->id", "error_when": "== 0" } },
        { "symbol": "make_reply", "return": { "name": "kind", "path": ".k" } },
    ]);
    let report = s.check(&s.config(&binary, functions.clone()), 0).await;
    assert_has_all(
        &report,
        &[
            "return user_id: i64 at ->id (offsets [0] from RAX) (error when == 0)",
            "return kind: u32 named by its enumerators at .k (offsets [16] from RAX)",
        ],
    );
    let (_, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let mut lookups: Vec<_> = named(&spans, "lookup");
    lookups.sort_by_key(|span| span.int_attr("id"));
    let [missing, found] = lookups[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(found.int_attr("user_id"), Some(42));
    assert_eq!(found.attr("user_id.fault"), None);
    // NULL returned: no value, the fault said, the span kept (and no error: nothing compared).
    assert_eq!(missing.attr("user_id"), None);
    assert_eq!(missing.bool_attr("user_id.fault"), Some(true));
    assert!(missing.span.status.as_ref().is_none_or(|s| s.code == 0));
    let [reply] = named(&spans, "make_reply")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(reply.str_attr("kind"), Some("KIND_PUT"));

    // Without debug info, the same chains by number.
    let stripped = without_debug_info(&binary);
    let functions = json!([
        { "symbol": "lookup", "return": { "name": "uid", "type": "i64", "offsets": [0] } },
        { "symbol": "make_reply", "return": { "name": "code", "type": "i64", "offsets": [0] } },
    ]);
    let (_, spans) = s
        .trace(
            &s.config(&stripped, functions),
            &[stripped.to_str().unwrap()],
        )
        .exits(0)
        .await;
    let ids: Vec<_> = named(&spans, "lookup")
        .iter()
        .map(|span| (span.int_attr("uid"), span.bool_attr("uid.fault")))
        .filter(|read| *read != (None, None))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&(Some(42), None)), "{ids:?}");
    assert!(ids.contains(&(None, Some(true))), "{ids:?}");
    // (The receiver also holds the first run's spans.)
    let codes: Vec<_> = named(&spans, "make_reply")
        .iter()
        .filter_map(|span| span.int_attr("code"))
        .collect();
    assert_eq!(codes, [200]);
}

#[tokio::test]
async fn refused_paths_say_why() {
    let dir = Workdir::new();
    let binary = fields_program(dir.path());
    let functions = json!([
        { "symbol": "walk",
          "args": [
              { "index": 0, "name": "fifth", "path": "->next->next->next->next->next->value" },
              { "index": 1, "name": "mode", "path": "->mode" },
          ],
          "return": { "path": "->x" } },
        { "symbol": "lookup", "return": { "name": "name", "path": "->name" } },
    ]);
    let stderr = dir
        .check(&json!({ "probes": [probe(&binary, functions)] }), 2)
        .await;
    assert_has_all(
        &stderr,
        &[
            "functions[0].args[0].path: ",
            "cannot resolve `->next->next->next->next->next->value`: the path follows more than 4 pointers",
            "functions[0].args[1].path: ",
            "cannot resolve `->mode`: `->mode`: `mode` is a bitfield, which cannot be read as a \
             whole number of bytes",
            "functions[0].return.path: ",
            "cannot resolve `->x`: `->x`: int is not a pointer",
            "functions[1].return.path: ",
            "cannot resolve `->name`: the value is char[16], read as `str`: a return value is \
             captured as a number, not the memory behind it",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_offers_members_that_trace_as_written() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = fields_program(s.path());
    let init =
        support::spanprobe_with(&["init", "--members", binary.to_str().unwrap(), "handle"]).await;
    assert_exit(&init, 0);
    let text = support::stdout(&init);
    assert_has_all(
        &text,
        &[
            "          - { index: 0, name: r, type: ptr }  # struct request *",
            "          # members of what `r` points to; uncomment to capture:",
            "          # - { index: 0, name: r.rid, path: '->rid' }  # int, read as i32",
            "          # - { index: 0, name: r.path, path: '->path' }  # const char *, read as str",
            "          # - { index: 0, name: r.k, path: '->k' }  # enum kind, read as its enumerator's name",
        ],
    );
    // Without the flag, nothing is offered.
    let plain = support::spanprobe_with(&["init", binary.to_str().unwrap(), "handle"]).await;
    assert!(!support::stdout(&plain).contains("->"));

    // A user uncomments the offers and traces with them as they are.
    let uncommented = text.replace("          # - ", "          - ");
    let (_, spans) = s
        .trace_yaml(&uncommented, &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let mut calls: Vec<_> = named(&spans, "handle");
    calls.sort_by_key(|span| span.span.start_time_unix_nano);
    let [full, empty, null] = calls[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(full.int_attr("r.rid"), Some(7));
    assert_eq!(full.str_attr("r.path"), Some("/index.html"));
    assert_eq!(full.str_attr("r.k"), Some("KIND_PUT"));
    assert_eq!(empty.bool_attr("r.path.fault"), Some(true));
    assert_eq!(null.bool_attr("r.rid.fault"), Some(true));
}
