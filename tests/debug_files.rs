//! Separate debug files, as distributions ship them: a stripped binary's functions, DWARF and
//! stack lines come from its debug file, found by build-id or `.gnu_debuglink`; its static
//! functions are probed at the stripped binary's addresses. Also: aliases named by their
//! public name, and a config's bare `binary:` found in PATH.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::json;
use support::scenario::{Scenario, Workdir, assert_exit, named, probe};

/// A program with a static function that takes a struct pointer: `norm` is in no dynamic
/// symbol table, only in the static one that `strip` moves to the debug file.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <stdlib.h>

struct point { long x; long y; };

__attribute__((noipa)) static long norm(const struct point *p)
{
    return p->x * p->x + p->y * p->y;
}

__attribute__((noipa)) long api(long n)
{
    struct point p = { n, n + 1 };
    return norm(&p);
}

int main(int argc, char **argv)
{
    long total = 0;
    for (int i = 1; i < argc; i++)
        total += api(atol(argv[i]));
    printf("%ld\n", total);
    return 0;
}
"#;

/// Debian's debug file of `/usr/bin/python3.11` (package python3.11-dbg).
const PYTHON: &str = "/usr/bin/python3.11";
const PYTHON_DEBUG: &str =
    "/usr/lib/debug/.build-id/c5/61f3aa7232f2bd6ac6d56bd475f1c154a00486.debug";

fn tool(program: &str, args: &[&std::ffi::OsStr]) {
    let output = Command::new(program).args(args).output().expect(program);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `PROGRAM` built into `dir` as `points` (exporting `api` and `main`), then stripped. With
/// `debug_link`, its debug file is `dir/.debug/points.debug`, named by its debug link.
fn stripped_program(dir: &Path, debug_link: bool) -> PathBuf {
    let source = dir.join("points.c");
    std::fs::write(&source, PROGRAM).unwrap();
    let binary = support::compile_c(&source, dir, "points", &["-rdynamic"]);
    let debug = dir.join(".debug/points.debug");
    std::fs::create_dir_all(debug.parent().unwrap()).unwrap();
    tool(
        "objcopy",
        &[
            "--only-keep-debug".as_ref(),
            binary.as_ref(),
            debug.as_ref(),
        ],
    );
    tool("strip", &["--strip-all".as_ref(), binary.as_ref()]);
    if debug_link {
        let link = format!("--add-gnu-debuglink={}", debug.display());
        tool("objcopy", &[link.as_ref(), binary.as_ref()]);
    } else {
        std::fs::remove_file(&debug).unwrap();
    }
    binary
}

fn stdout_of(output: &std::process::Output) -> String {
    assert_exit(output, 0);
    support::stdout(output)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_function_of_a_stripped_binary_is_probed_through_its_debug_link() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = stripped_program(s.path(), true);
    let path = binary.to_str().unwrap();

    let listed = stdout_of(&support::spanprobe_with(&["symbols", path, "norm"]).await);
    assert!(listed.trim_end().ends_with(" norm"), "{listed}");
    // Its DWARF too: the parameter's type, and the members behind it.
    let init = stdout_of(&support::spanprobe_with(&["init", "--members", path, "norm"]).await);
    assert!(
        init.contains("- { index: 0, name: p, type: ptr }  # const struct point *")
            && init.contains("path: '->y'"),
        "{init}"
    );

    let functions = json!([{
        "symbol": "norm",
        "stack": true,
        "args": [{ "index": 0, "name": "y", "path": "->y", "type": "i64" }],
    }]);
    let (_, spans) = s
        .trace(&s.config(&binary, functions), &[path, "3"])
        .exits(0)
        .await;
    let norm = named(&spans, "norm");
    assert_eq!(norm.len(), 1, "{spans:?}");
    assert_eq!(norm[0].int_attr("y"), Some(4));
    let stack = norm[0].str_attr("code.stacktrace").unwrap();
    let frames: Vec<&str> = stack.lines().collect();
    assert!(
        frames[0].starts_with("norm (") && frames[0].contains("points.c:"),
        "{stack}"
    );
    assert!(frames[1].starts_with("api ("), "{stack}");
}

#[tokio::test]
async fn a_debug_file_of_another_build_is_passed_over() {
    let dir = Workdir::new();
    let binary = stripped_program(dir.path(), true);
    let debug = dir.path().join(".debug/points.debug");
    let mut bytes = std::fs::read(&debug).unwrap();
    bytes.push(0);
    std::fs::write(&debug, bytes).unwrap();
    let output = support::spanprobe_with(&["symbols", binary.to_str().unwrap(), "norm"]).await;
    assert_exit(&output, 1);
    let err = support::stderr(&output);
    assert!(
        err.contains(&format!("{}: CRC-32 0x", debug.display()))
            && err.contains("a debug file of another build"),
        "{err}"
    );
}

/// Without its debug file, a function missing from a stripped binary gets the reason first:
/// static functions are named only in the debug package's file, at its build-id path.
#[tokio::test]
async fn a_missing_debug_file_is_hinted_at_before_closest_names() {
    let dir = Workdir::new();
    let binary = stripped_program(dir.path(), false);
    let output = support::spanprobe_with(&["symbols", binary.to_str().unwrap(), "norm"]).await;
    assert_exit(&output, 1);
    let err = support::stderr(&output);
    let expected = format!(
        "spanprobe: {}: no function matches `norm`; the binary is stripped and its debug file \
         is not installed (no /usr/lib/debug/.build-id/",
        binary.display()
    );
    assert!(err.starts_with(&expected), "{err}");
    assert!(
        err.contains(".debug): if `norm` is a static function, its name is only in that file"),
        "{err}"
    );
}

/// Debian's python3.11-dbg: `init` gives DWARF types, a member path is followed, and the
/// spans carry what it read.
#[tokio::test(flavor = "multi_thread")]
async fn debian_s_python_debug_file_gives_types_and_member_paths() {
    support::needs_root!();
    assert!(
        Path::new(PYTHON_DEBUG).is_file(),
        "{PYTHON_DEBUG} is missing: install python3.11-dbg (scripts/setup.sh does)"
    );
    let init = stdout_of(&support::spanprobe_with(&["init", PYTHON, "PyObject_GetAttr"]).await);
    assert!(
        init.contains("- { index: 0, name: v, type: ptr }  # PyObject *")
            && init.contains("- { index: 1, name: name, type: ptr }  # PyObject *"),
        "{init}"
    );

    let s = Scenario::start().await;
    let functions = json!([{
        "symbol": "PyObject_GetAttr",
        "args": [{ "index": 0, "name": "type", "path": "->ob_type->tp_name", "max_len": 32 }],
    }]);
    let config = s.config(PYTHON, functions);
    let check = s.check(&config, 0).await;
    assert!(
        check.contains("at ->ob_type->tp_name (offsets [8, 24, 0] from RDI)"),
        "{check}"
    );
    let command = [PYTHON, "-S", "-c", "getattr('abc', 'upper')"];
    let (_, spans) = s.trace(&config, &command).exits(0).await;
    let types: Vec<_> = named(&spans, "PyObject_GetAttr")
        .iter()
        .filter_map(|span| span.str_attr("type"))
        .collect();
    assert!(types.contains(&"str"), "{types:?}");
}

/// libc6-dbg: the debug file's static symbol table adds glibc's internal functions, and each
/// address is named by its public alias.
#[tokio::test]
async fn libc_s_debug_file_adds_functions_named_by_their_public_alias() {
    let all = stdout_of(&support::spanprobe_with(&["symbols", "libc.so.6"]).await);
    // .dynsym alone lists 2,200 addresses; the debug file's .symtab about 3,600.
    assert!(
        all.lines().count() > 3_000,
        "{} functions: is libc6-dbg installed?",
        all.lines().count()
    );
    let read = stdout_of(&support::spanprobe_with(&["symbols", "libc.so.6", "__libc_rea?"]).await);
    assert!(read.trim_end().ends_with(" read  (also __read)"), "{read}");
    let malloc = stdout_of(&support::spanprobe_with(&["symbols", "libc.so.6", "*malloc"]).await);
    assert!(
        malloc
            .lines()
            .any(|line| line.ends_with(" malloc  (also __libc_malloc)")),
        "{malloc}"
    );
    // A static function: only in the debug file.
    let local = stdout_of(&support::spanprobe_with(&["symbols", "libc.so.6", "_int_malloc"]).await);
    assert!(local.trim_end().ends_with(" _int_malloc"), "{local}");
}

/// A config's bare `binary:` is a program in PATH when no file of that name is next to the
/// config, as `spanprobe symbols NAME` finds it; when it is nowhere, the error says where it
/// looked.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_names_a_program_in_path() {
    support::needs_root!();
    let s = Scenario::start().await;
    let bin = s.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = support::compile_c(
        &support::programs().join("calls.c"),
        &bin,
        "calls-in-path",
        &["-pthread"],
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let config = json!({
        "exporter": s.config(&calls, json!([]))["exporter"].clone(),
        "probes": [probe("calls-in-path", json!([{ "symbol": "inner" }]))],
    });
    let output = support::run_env(
        &s.write(&config),
        &["calls-in-path", "chain-wait"],
        &[("PATH", &path)],
    )
    .await;
    assert_exit(&output, 0);
    assert_eq!(named(&s.receiver.spans(), "inner").len(), 1);

    let missing = json!({ "probes": [probe("no-such-program", json!([{ "symbol": "f" }]))] });
    let output = support::run_env(&s.write(&missing), &["true"], &[("PATH", "/nowhere")]).await;
    assert_exit(&output, 2);
    let err = support::stderr(&output);
    assert!(
        err.contains(
            "probes[0].binary: `no-such-program` is not a file next to the config, a program \
             in PATH (/nowhere), nor a library the dynamic loader knows"
        ),
        "{err}"
    );
}
