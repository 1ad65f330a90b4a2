//! Arguments read beyond registers: a `str` (by the sleepable entry program), and members
//! along DWARF paths, with their faults.

use serde_json::json;

use crate::{
    checks::assert_all_exported,
    support::{scenario::Workdir, vm::Case},
    traced::{functions_config, traced},
};

/// A `str` argument (read by the sleepable entry program): libgreet's greet_len(name), called
/// by use_greet with "world" and "spanprobe".
pub fn str_argument(dir: &Workdir) -> Case {
    let (library, program) = dir.greet();
    let functions = json!([{
        "symbol": "greet_len",
        "args": [{ "index": 0, "name": "name", "type": "str" }],
        "return": { "type": "i32" },
    }]);
    let config = dir.write_named("str", &functions_config(&library, functions));
    traced("a str argument", &config, &program)
        .file(&library)
        .case(|_, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "use_greet 14\n");
            let spans = receiver.spans();
            let mut greeted: Vec<_> = spans
                .iter()
                .map(|s| {
                    assert!(s.span.parent_span_id.is_empty(), "{s:#?}");
                    (
                        s.name(),
                        s.str_attr("name"),
                        s.bool_attr("name.truncated"),
                        s.int_attr("return_value"),
                    )
                })
                .collect();
            greeted.sort();
            assert_eq!(
                greeted,
                [
                    ("greet_len", Some("spanprobe"), None, Some(9)),
                    ("greet_len", Some("world"), None, Some(5)),
                ]
            );
            assert_all_exported(output, 2);
        })
}

/// fields.c's handle(struct request *r), with members read along DWARF paths: a full request,
/// one whose pointers are NULL (what is behind them faults), and NULL itself.
pub fn member_path(dir: &Workdir) -> Case {
    let program = dir.c_program("fields");
    let member = |name: &str, ty: &str, path: &str| json!({ "index": 0, "name": name, "type": ty, "path": path });
    let functions = json!([{
        "symbol": "handle",
        "args": [
            member("rid", "i32", "->rid"),
            member("user_id", "i64", "->user->id"),
            member("user_name", "str", "->user->name"),
            member("path", "str", "->path"),
            member("tag2", "i32", "->tags[2]"),
            member("kind", "i32", "->k"),
        ],
        "return": { "type": "i32" },
    }]);
    let config = dir.write_named("fields", &functions_config(&program, functions));
    traced("dwarf member paths", &config, &program).case(|_, output, receiver| {
        output.assert_success();
        assert_eq!(output.stdout, "fields 2018 8 16 24 40 8\n");
        let mut calls = receiver.spans();
        calls.sort_by_key(|span| span.span.start_time_unix_nano);
        let names = ["rid", "user_id", "user_name", "path", "tag2", "kind"];
        // Each member: its value, an integer or a string, or "fault".
        let values: Vec<Vec<String>> = calls
            .iter()
            .map(|call| {
                assert_eq!(call.name(), "handle");
                let mut values: Vec<String> = names
                    .iter()
                    .map(|name| {
                        let fault = call.bool_attr(&format!("{name}.fault"));
                        match (call.int_attr(name), call.str_attr(name), fault) {
                            (Some(n), None, None) => n.to_string(),
                            (None, Some(s), None) => format!("{s:?}"),
                            (None, None, Some(true)) => "fault".to_owned(),
                            _ => panic!("{name}: {call:#?}"),
                        }
                    })
                    .collect();
                values.push(format!("returned {:?}", call.int_attr("return_value")));
                values
            })
            .collect();
        let expected = [
            r#"7 42 "alice" "/index.html" 30 2 returned Some(7)"#,
            "8 fault fault fault 0 1 returned Some(8)",
            "fault fault fault fault fault fault returned Some(-1)",
        ];
        assert_eq!(
            values.iter().map(|v| v.join(" ")).collect::<Vec<_>>(),
            expected
        );
        assert_all_exported(output, 3);
    })
}

/// `when` on fields.c's handle: a string member compared with a text, and a number DWARF
/// types, decided by the entry program; the full request alone meets both.
pub fn when_conditions(dir: &Workdir) -> Case {
    let program = dir.c_program("fields");
    let member = |name: &str, path: &str| json!({ "index": 0, "name": name, "path": path });
    let mut path = member("path", "->path");
    path["type"] = json!("str");
    let functions = json!([{
        "symbol": "handle",
        "args": [member("rid", "->rid"), path],
        "when": { "path": "prefix /index", "rid": "!= 8" },
    }]);
    let config = dir.write_named("when", &functions_config(&program, functions));
    traced("when conditions", &config, &program).case(|_, output, receiver| {
        output.assert_success();
        let calls: Vec<_> = receiver
            .spans()
            .iter()
            .map(|call| {
                (
                    call.int_attr("rid"),
                    call.str_attr("path").map(str::to_owned),
                )
            })
            .collect();
        assert_eq!(calls, [(Some(7), Some("/index.html".to_owned()))]);
        assert!(
            output.stderr.contains("filtered_by_when=2"),
            "{}",
            output.stderr
        );
    })
}

/// outputs.c's buffers, read when the calls that fill them return (the return program reads
/// user memory): counted by the return value, and by the `size_t` behind an argument; a call
/// that failed has no value.
pub fn output_buffers(dir: &Workdir) -> Case {
    let program = dir.c_program("outputs");
    let data = |index: u8, len_arg: &str| {
        json!([{ "index": index, "name": "data", "type": "str", "max_len": 32, "at": "return",
                 "len_arg": len_arg }])
    };
    let functions = json!([
        { "symbol": "fill", "args": data(1, "return") },
        { "symbol": "fill_ex", "args": data(0, "*2") },
    ]);
    let config = dir.write_named("outputs", &functions_config(&program, functions));
    traced("output buffers read at return", &config, &program).case(|_, output, receiver| {
        output.assert_success();
        let mut calls = receiver.spans();
        calls.sort_by_key(|span| span.span.start_time_unix_nano);
        let read: Vec<_> = calls
            .iter()
            .map(|call| (call.name(), call.str_attr("data")))
            .collect();
        assert_eq!(
            read,
            [
                ("fill", Some("filled by the call")),
                ("fill", None),
                ("fill_ex", Some("counted behind a pointer")),
                ("fill_ex", None),
            ]
        );
        assert_all_exported(output, 4);
    })
}

/// prologue.c's sum_list and scale, built without frame pointers: their probes sit on the
/// branch after `test %rdi,%rdi`, which the kernel emulates. sum_list is probed at its entry
/// too (by address, which stays there): each call has a span at both places, the moved one
/// the child, with the same arguments and result; scale tail-calls sum_list through the same
/// return slot.
pub fn moved_probes(dir: &Workdir) -> Case {
    let program = crate::support::compile_c(
        &crate::support::programs().join("prologue.c"),
        dir.path(),
        "prologue",
        &["-fomit-frame-pointer", "-foptimize-sibling-calls"],
    );
    let entry = nm_address(&program, "sum_list");
    let args = json!([
        { "index": 0, "name": "xs", "type": "ptr" },
        { "index": 1, "name": "n", "type": "i64" },
    ]);
    let functions = json!([
        { "symbol": "sum_list", "args": args, "return": { "type": "i64" } },
        { "address": entry, "span_name": "sum_list@entry", "args": args,
          "return": { "type": "i64" } },
        { "symbol": "scale", "args": args, "return": { "type": "i64" } },
    ]);
    let config = dir.write_named("prologue", &functions_config(&program, functions));
    traced("probes moved past a prologue", &config, &program).case(|_, output, receiver| {
        output.assert_success();
        assert_eq!(output.stdout, "prologue 12\n");
        let spans = receiver.spans();
        let ids: std::collections::HashMap<_, _> =
            spans.iter().map(|s| (s.span.span_id.clone(), s)).collect();
        let parent = |s: &crate::support::receiver::ReceivedSpan| {
            ids.get(&s.span.parent_span_id).map(|p| p.name().to_owned())
        };
        let mut calls: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    s.name().to_owned(),
                    parent(s),
                    s.int_attr("n"),
                    s.int_attr("return_value"),
                )
            })
            .collect();
        calls.sort();
        let call = |name: &str, parent: Option<&str>, n, ret| {
            (
                name.to_owned(),
                parent.map(str::to_owned),
                Some(n),
                Some(ret),
            )
        };
        assert_eq!(
            calls,
            [
                call("scale", None, 2, 3),
                call("sum_list", Some("sum_list@entry"), 2, 3),
                call("sum_list", Some("sum_list@entry"), 4, 10),
                call("sum_list", Some("sum_list@entry"), 9, -1),
                call("sum_list@entry", None, 4, 10),
                call("sum_list@entry", None, 9, -1),
                call("sum_list@entry", Some("scale"), 2, 3),
            ]
        );
        assert_all_exported(output, 7);
    })
}

/// The address `nm` gives `symbol` in `binary`.
fn nm_address(binary: &std::path::Path, symbol: &str) -> u64 {
    let nm = std::process::Command::new("nm")
        .arg(binary)
        .output()
        .expect("nm runs");
    String::from_utf8_lossy(&nm.stdout)
        .lines()
        .find_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [address, _, name] if name == symbol => u64::from_str_radix(address, 16).ok(),
                _ => None,
            },
        )
        .unwrap_or_else(|| panic!("nm shows no {symbol} in {}", binary.display()))
}
