//! `stack`: the frames of the callers, named and placed, down to libc's start: walked by frame
//! pointers in the kernel, and unwound in userspace from a copy of the stack.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::{
    chain::{Chain, chain_functions, chains},
    checks::{line_of, printed_pid},
    support::{
        self,
        scenario::{Workdir, named},
        vm::Case,
    },
    traced::{functions_config, traced},
};

/// Where libc6-dbg put the detached debug info of the shared library `library` (by its build
/// id, under /usr/lib/debug/.build-id): what names libc's own frames, on the host and, placed
/// there too, in a guest.
fn detached_debug_info(library: &Path) -> PathBuf {
    let notes = std::process::Command::new("readelf")
        .arg("-n")
        .arg(library)
        .output()
        .expect("readelf runs");
    let notes = String::from_utf8_lossy(&notes.stdout);
    let id = notes
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("{} has no build id:\n{notes}", library.display()));
    let path = PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &id[..2],
        &id[2..]
    ));
    assert!(
        path.is_file(),
        "{} missing: scripts/setup.sh installs libc6-dbg",
        path.display()
    );
    path
}

/// `stack: true` on inner: its stack, symbolized, names inner, its callers middle and outer,
/// then main, each at its line of calls.c, then libc's start (named from libc6-dbg's file).
pub fn stack(dir: &Workdir, calls: &Path) -> Case {
    inner_stack(dir, calls, "stack", json!(true))
}

/// `stack: { unwind: dwarf }` on inner: the same stack, unwound in userspace from the window
/// the sleepable entry copied page by page, with the return addresses of middle and outer,
/// which the uretprobe trampoline stands in for, put back.
pub fn unwound_stack(dir: &Workdir, calls: &Path) -> Case {
    inner_stack(dir, calls, "unwound", json!({ "unwind": "dwarf" }))
}

/// `calls chain-wait` with `stack` set to `stack` on inner, checked frame by frame.
fn inner_stack(dir: &Workdir, calls: &Path, name: &'static str, stack: serde_json::Value) -> Case {
    let libc_debug_info = detached_debug_info(Path::new("/lib/x86_64-linux-gnu/libc.so.6"));
    let mut functions = chain_functions();
    functions[2]["stack"] = stack.clone();
    let config = dir.write_named(name, &functions_config(calls, functions));
    let source = support::programs().join("calls.c");
    let frames: Vec<(&str, i64)> = [
        ("inner", "", "PROBED long inner"),
        ("middle", "", "PROBED long middle"),
        ("outer", "", "PROBED long outer"),
        ("main", "\"chain-wait\"", "outer(1);"),
    ]
    .into_iter()
    .map(|(function, after, text)| (function, line_of(&source, after, text)))
    .collect();
    traced(format!("stack: {stack}"), &config, calls)
        .command(format!("{} chain-wait", calls.display()))
        .file(&libc_debug_info)
        .case(move |_, output, receiver| {
            output.assert_success();
            let pid = printed_pid(output, "calls");
            let spans = receiver.spans();
            assert_eq!(chains(&spans), [Chain::of(pid, pid, 1)]);
            let [inner] = named(&spans, "inner")[..] else {
                unreachable!("chains() found one")
            };
            let stack: Vec<&str> = inner
                .str_attr("code.stacktrace")
                .unwrap_or_else(|| panic!("no code.stacktrace: {inner:#?}"))
                .lines()
                .collect();
            assert!(stack.len() > frames.len(), "{stack:#?}");
            for (frame, (function, line)) in stack.iter().zip(&frames) {
                assert!(
                    frame.starts_with(&format!("{function} ("))
                        && frame.ends_with(&format!("/calls.c:{line})")),
                    "{frame:?} is not {function} at calls.c:{line}: {stack:#?}"
                );
            }
            assert!(
                stack[frames.len()].starts_with("__libc_start_call_main ("),
                "{stack:#?}"
            );
            assert_eq!(inner.attr("spanprobe.stack.truncated"), None);
            for span in named(&spans, "outer")
                .into_iter()
                .chain(named(&spans, "middle"))
            {
                assert_eq!(span.attr("code.stacktrace"), None, "{span:#?}");
            }
        })
}
