//! `spanprobe check`, `symbols` and `init`: what a user runs to write a config, without root.

mod support;

use std::{
    ffi::{OsStr, OsString},
    os::unix::fs::PermissionsExt as _,
    path::Path,
};

use serde_json::json;
use support::scenario::{Workdir, assert_exit, probe, symbols};

/// Makes `dir` readable by an unprivileged user.
fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs spanprobe with `args` under `setpriv` with `privileges` (its options).
async fn setpriv<S: AsRef<OsStr>>(privileges: &[String], args: &[S]) -> std::process::Output {
    tokio::process::Command::new("setpriv")
        .args(privileges)
        .arg("--")
        .arg(support::spanprobe())
        .args(args)
        .output()
        .await
        .expect("setpriv runs")
}

/// Runs spanprobe as `nobody`, with no capabilities; as it is, when the tests do not run as
/// root (they are unprivileged already, and only root can become `nobody`).
async fn unprivileged(args: &[&str]) -> std::process::Output {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return support::spanprobe_with(args).await;
    }
    let nobody = [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    setpriv(&nobody.map(String::from), args).await
}

#[tokio::test]
async fn check_shows_what_would_be_attached_without_root() {
    support::needs_root!("it runs check as nobody and as root");
    let dir = Workdir::new();
    open_up(dir.path());
    let demo = dir.demo();
    let add = json!({
        "symbol": "two_ints_and_return",
        "span_name": "add",
        "args": [
            { "index": 0, "name": "a", "type": "i32" },
            { "index": 7, "name": "h", "type": "str", "max_len": 8 },
        ],
        "return": { "name": "sum", "type": "i32", "error_when": "< 0" },
    });
    let config = dir.write(&json!({ "probes": [probe("demo", json!([add]))] }));
    let output = unprivileged(&["check", "--config", config.to_str().unwrap()]).await;
    assert_exit(&output, 0);
    let symbols =
        support::spanprobe_with(&["symbols", demo.to_str().unwrap(), "two_ints_and_return"]).await;
    let address = support::stdout(&symbols)
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("0x")
        .trim_start_matches('0')
        .to_owned();
    assert_eq!(
        support::stdout(&output),
        format!(
            "{config}: ok, 1 function to probe\nrun attaches 2 uprobes through 2 uprobe_multi links (2 perf events where the kernel has no such links); with a command, in its processes only, as perf events\n{demo}\n  add: two_ints_and_return at address 0x{address}, file offset 0x{address}, first instruction `lea (%rdi,%rsi),%eax` single-stepped by the kernel (a second trap per call, inside the span), not moved: `ret` does not always run the next instruction; args a: i32 (RDI), h: str up to 8 bytes (stack+16); return sum: i32 (RAX) (error when < 0)\nspans go to standard error (lines)\n",
            config = config.display(),
            demo = demo.display(),
        )
    );
    // Without CAP_PERFMON the second trap's cost is not measured; with it (root), it is.
    assert!(
        support::stderr(&output).contains("cannot measure what a single-stepped instruction costs"),
        "{}",
        support::stderr(&output)
    );
    let as_root = support::spanprobe_with(&["check", "--config", config.to_str().unwrap()]).await;
    let text = support::stdout(&as_root);
    let cost = text
        .split_once("(a second trap per call, ")
        .and_then(|(_, rest)| rest.split_once(" µs here, inside the span)"))
        .map(|(cost, _)| cost.parse::<f64>());
    assert!(matches!(cost, Some(Ok(_))), "{text}");
}

/// Runs `check` on `config` as `nobody`: it finds problems, exits with 2, and says them on stderr,
/// which is returned.
async fn check_refuses(config: &Path) -> String {
    let output = unprivileged(&["check", "-c", config.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2));
    support::stderr(&output)
}

#[tokio::test]
async fn check_reports_every_problem_and_exits_2() {
    let dir = Workdir::new();
    open_up(dir.path());
    dir.demo();
    let config = dir.write_yaml(
        "probes:\n  - binary: demo\n    functions:\n      - symbol: no_such\n      - offset: 0x1\n      - symbol: inner\n        args: [{ index: 0, type: f32 }]\n",
    );
    let err = check_refuses(&config).await;
    // A schema error, then what resolving the rest finds, in file order.
    let lines: Vec<_> = err.trim().lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains(":4:17: probes[0].functions[0].symbol:")
            && lines[0].contains("no function `no_such`"),
        "{err}"
    );
    let expected = format!(
        ":5:17: probes[0].functions[1].offset: {}: offset 0x1 is not in an executable segment",
        dir.path().join("demo").display()
    );
    assert!(lines[1].ends_with(&expected), "{err}");
    assert_eq!(
        lines[2],
        format!(
            "{}:7:34: probes[0].functions[2].args[0].type: `f32` cannot be captured: \
             floating-point arguments and return values are passed in XMM registers, which \
             uprobes do not see",
            config.display()
        )
    );
    // A semantic problem and an unknown symbol, in another function, come together too.
    std::fs::write(
        &config,
        "probes:\n  - binary: demo\n    functions:\n      - symbol: inner\n        sample_rate: 2\n      - symbol: no_such\n",
    )
    .unwrap();
    let err = check_refuses(&config).await;
    let lines: Vec<_> = err.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains(":5:22: probes[0].functions[0].sample_rate:"),
        "{err}"
    );
    assert!(
        lines[1].contains(":6:17: probes[0].functions[1].symbol:")
            && lines[1].contains("no function `no_such`"),
        "{err}"
    );
}

#[tokio::test]
async fn symbols_lists_and_filters_functions() {
    let dir = Workdir::new();
    let demo = dir.demo();
    let output =
        support::spanprobe_with(&["symbols", demo.to_str().unwrap(), "*_and_return"]).await;
    assert_eq!(output.status.code(), Some(0));
    let names: Vec<String> = support::stdout(&output)
        .lines()
        .map(|l| l.split_whitespace().last().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "do_nothing_and_return",
            "two_chars_and_return",
            "two_ints_and_return"
        ]
    );
    // Shared libraries by bare name, as the loader finds them.
    let output = support::spanprobe_with(&["symbols", "libc.so.6", "getaddrinfo"]).await;
    assert_eq!(output.status.code(), Some(0));
    assert!(
        support::stdout(&output)
            .trim_end()
            .ends_with(" getaddrinfo")
    );
}

/// A command line names a program in PATH too; what is not an ELF file, what has no function
/// symbols and what matches nothing each get a message saying why, and a non-zero exit.
#[tokio::test]
async fn symbols_and_init_say_why_they_find_nothing() {
    let dir = Workdir::new();
    let demo = dir.demo();
    let failure = |output: &std::process::Output| {
        assert_eq!(output.status.code(), Some(1), "{}", support::stdout(output));
        support::stderr(output)
    };
    let output = support::spanprobe_with(&["symbols", "/etc/passwd"]).await;
    assert_eq!(
        failure(&output),
        "spanprobe: /etc/passwd: not an ELF file\n"
    );

    // sqlite3 is stripped, and its functions are in libsqlite3.
    for command in ["symbols", "init"] {
        let output = support::spanprobe_with(&[command, "sqlite3"]).await;
        let err = failure(&output);
        assert!(
            err.contains("sqlite3: is stripped (no .symtab) and exports no function (.dynsym)")
                && err.contains("the libraries it loads: libsqlite3.so.0"),
            "{err}"
        );
    }

    // init suggests what symbols does, each name quoted once with the table it is in.
    let mut suggestions = Vec::new();
    for command in ["init", "symbols"] {
        let output = support::spanprobe_with(&[command, demo.to_str().unwrap(), "inne"]).await;
        let err = failure(&output);
        let (_, closest) = err
            .split_once("no function matches `inne` (closest: `inner` (")
            .unwrap_or_else(|| panic!("{command}: {err}"));
        assert!(!closest.contains("``"), "{command}: {err}");
        suggestions.push(closest.to_owned());
    }
    assert_eq!(suggestions[0], suggestions[1]);

    // A binary without USDT probes says so, and an empty pattern is no pattern.
    for args in [
        vec!["init", "--usdt", demo.to_str().unwrap()],
        vec!["symbols", "--usdt", demo.to_str().unwrap(), ""],
    ] {
        let output = support::spanprobe_with(&args).await;
        assert_eq!(
            failure(&output),
            format!(
                "spanprobe: {}: the binary has no USDT probes (no .note.stapsdt notes)\n",
                demo.display()
            ),
            "{args:?}"
        );
    }
    let output = support::spanprobe_with(&["symbols", demo.to_str().unwrap(), "nothing*"]).await;
    assert!(failure(&output).contains("no function matches `nothing*`"));
}

/// `init` names a library by its SONAME, as the loader finds it, not by the versioned file,
/// and leaves `service.name` to the programs that load it.
#[tokio::test]
async fn init_names_a_library_by_its_soname() {
    let output = support::spanprobe_with(&["init", "libsqlite3.so.0", "sqlite3_open*"]).await;
    assert_exit(&output, 0);
    let text = support::stdout(&output);
    assert!(text.contains("  - binary: libsqlite3.so.0\n"), "{text}");
    assert!(text.contains("      - symbol: sqlite3_open_v2\n"), "{text}");
    assert!(!text.contains("\nservice_name:"), "{text}");
    let dir = Workdir::new();
    let config = dir.write_yaml(&text);
    let check = support::spanprobe_with(&["check", "--config", config.to_str().unwrap()]).await;
    assert_exit(&check, 0);
}

/// A symbol the binary only imports names the library that defines it.
#[tokio::test]
async fn an_imported_symbol_names_the_library_that_defines_it() {
    let dir = Workdir::new();
    let config = dir.write(&json!({
        "probes": [probe("/usr/bin/sqlite3", symbols(&["sqlite3_open_v2"]))],
    }));
    let output = support::spanprobe_with(&["check", "--config", config.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2));
    let err = support::stderr(&output);
    assert!(
        err.contains(
            "no function `sqlite3_open_v2` (the binary imports it from libsqlite3.so.0, where \
             it is defined: probe it there, `binary: libsqlite3.so.0`)"
        ),
        "{err}"
    );
}

/// A command that cannot start is said before anything is attached.
#[tokio::test]
async fn a_missing_command_is_found_before_attaching() {
    let dir = Workdir::new();
    dir.demo();
    let config = json!({ "probes": [probe("demo", symbols(&["inner"]))] });
    let output = dir.run(&config, &["no-such-program-here"]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = support::stderr(&output);
    assert!(
        err.contains("cannot start `no-such-program-here`: no such program in PATH"),
        "{err}"
    );
    assert!(!err.contains("attached"), "{err}");
}

/// A run that fails at start-up (here after attaching: the metrics port is taken) leaves the
/// `-o` file of the previous capture as it was, and creates none that was not there.
#[tokio::test]
async fn a_run_that_fails_to_start_keeps_the_previous_capture() {
    support::needs_root!();
    let dir = Workdir::new();
    let demo = dir.demo();
    let config = dir.write(&json!({ "probes": [probe("demo", symbols(&["inner"]))] }));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let previous = dir.path().join("spans.txt");
    std::fs::write(&previous, "previous capture\n").unwrap();
    let fresh = dir.path().join("fresh.txt");
    for output in [&previous, &fresh] {
        let run = support::spanprobe_with(&[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--metrics-addr",
            &port,
            "-o",
            output.to_str().unwrap(),
            "--",
            demo.to_str().unwrap(),
            "1",
        ])
        .await;
        let err = support::stderr(&run);
        assert_eq!(run.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot serve metrics"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&previous).unwrap(),
        "previous capture\n"
    );
    assert!(
        !fresh.exists(),
        "a run that never started created {fresh:?}"
    );
}

/// A run whose probes saw no call says so at exit, and why when it can tell: here the command
/// never loads the probed library.
#[tokio::test]
async fn probes_that_saw_no_call_are_named_at_exit() {
    support::needs_root!();
    let dir = Workdir::new();
    let config = json!({ "probes": [probe("libsqlite3.so.0", symbols(&["sqlite3_open*"]))] });
    let output = dir.run(&config, &["true"]).await;
    assert_exit(&output, 0);
    let err = support::stderr(&output);
    assert!(
        err.contains(
            "libsqlite3.so.0: none of its 3 probed functions was called by a traced process"
        ) && err.contains(
            "does not load libsqlite3.so.0 directly: it may have the library's code built in"
        ),
        "{err}"
    );
}

/// A reader that stops early (`| head -1`) ends the listing quietly, with status 0.
#[tokio::test]
async fn a_closed_pipe_ends_output_quietly() {
    for args in [["symbols", "libc.so.6"], ["init", "libc.so.6"]] {
        let mut child = tokio::process::Command::new(support::spanprobe())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before anything is read: every write fails with EPIPE.
        drop(child.stdout.take());
        let output = child.wait_with_output().await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(support::stderr(&output), "", "{args:?}");
    }
}

#[tokio::test]
async fn init_writes_a_config_that_checks() {
    let dir = Workdir::new();
    let source = support::repo_root().join("examples/captures/captures.c");
    let binary = support::compile_c(&source, dir.path(), "captures", &[]);
    let output = support::spanprobe_with(&[
        "init",
        binary.to_str().unwrap(),
        "open_path",
        "nine_args",
        "pass_pointer",
    ])
    .await;
    assert_exit(&output, 0);
    let config_text = support::stdout(&output);
    assert!(
        config_text.contains("- { index: 0, name: path, type: str }  # const char *"),
        "{config_text}"
    );
    assert!(
        config_text.contains("- { index: 6, name: a6, type: u64 }  # uint64_t"),
        "{config_text}"
    );
    assert!(
        config_text.contains("- { index: 7, name: a7, type: bool }  # _Bool"),
        "{config_text}"
    );
    assert!(
        config_text.contains("return: { type: ptr }  # void *"),
        "{config_text}"
    );
    let config = dir.write_yaml(&config_text);
    let check = support::spanprobe_with(&["check", "-c", config.to_str().unwrap()]).await;
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{config_text}",
        support::stderr(&check)
    );
    assert!(support::stdout(&check).contains("ok, 3 functions to probe"));

    // Without debug info, the symbols only, and a note saying so.
    let stripped = support::compile_c(&source, dir.path(), "nodebug", &["-g0"]);
    let output = support::spanprobe_with(&["init", stripped.to_str().unwrap(), "open_path"]).await;
    let text = support::stdout(&output);
    assert!(
        text.contains("# The binary has no debug info")
            && text.contains("- symbol: open_path\n")
            && !text.contains("args:"),
        "{text}"
    );
}

/// The functions of a Go binary whose Go version is unknown get entry-only spans: `return` is
/// refused with the reason, and so are arguments of a function not named by `symbol` (Go's
/// are placed by their DWARF parameters).
#[tokio::test]
async fn go_binaries_refuse_return_and_args_with_the_reason() {
    let dir = Workdir::new();
    dir.fake_go();
    let config = dir.write_yaml(
        "probes:\n  - binary: fakego\n    functions:\n      - symbol: handler\n        return: { type: i32 }\n      - address: 0x1000\n        args: [{ index: 0, type: i32 }]\n",
    );
    let output = support::spanprobe_with(&["check", "-c", config.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2));
    let binary = dir.path().join("fakego");
    assert_eq!(
        support::stderr(&output).trim(),
        format!(
            "spanprobe: {config}:5:17: probes[0].functions[0].return: {binary}: is a Go binary \
             built by an unknown Go version, so its functions get entry-only spans: remove \
             `return`\n\
             {config}:7:16: probes[0].functions[1].args: {binary}: is a Go binary, whose \
             arguments are found by their declared position in the function's DWARF: probe it \
             by `symbol`",
            config = config.display(),
            binary = binary.display(),
        )
    );
    std::fs::write(
        &config,
        "probes:\n  - binary: fakego\n    functions:\n      - { symbol: handler, min_duration: 1ms }\n",
    )
    .unwrap();
    let output = support::spanprobe_with(&["check", "-c", config.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2));
    let err = support::stderr(&output);
    assert!(
        err.contains(":4:42: probes[0].functions[0].min_duration: "),
        "{err}"
    );
    assert!(
        err.contains("its functions get entry-only spans, with no duration: remove `min_duration`"),
        "{err}"
    );
    std::fs::write(
        &config,
        "probes:\n  - binary: fakego\n    functions:\n      - symbol: handler\n",
    )
    .unwrap();
    let output = support::spanprobe_with(&["check", "-c", config.to_str().unwrap()]).await;
    assert_exit(&output, 0);
}

/// Runs `spanprobe run [--attach MODE]` as root but with only the capabilities `caps` (e.g.
/// "+bpf,+perfmon").
async fn with_capabilities(
    caps: &str,
    attach: Option<&str>,
    config: &Path,
    command: &Path,
) -> std::process::Output {
    let privileges =
        ["bounding-set", "inh-caps", "ambient-caps"].map(|set| format!("--{set}=-all,{caps}"));
    let mut args: Vec<OsString> = ["run", "--log-level", "warn", "--config"]
        .map(OsString::from)
        .into();
    args.push(config.into());
    args.extend(attach.map(|mode| format!("--attach={mode}").into()));
    args.extend(["--".into(), command.into(), "1".into()]);
    setpriv(&privileges, &args).await
}

/// The capabilities the README lists are enough, and without one spanprobe says which; the
/// perf-event fallback needs CAP_SYS_ADMIN as well, and says so.
#[tokio::test]
async fn runs_with_only_the_capabilities_it_lists() {
    support::needs_root!("it runs spanprobe with chosen capabilities");
    let dir = Workdir::new();
    let demo = dir.demo();
    let config = dir.write(&json!({ "probes": [probe("demo", symbols(&["inner"]))] }));
    let inner_spans = |output: &std::process::Output| {
        support::stderr(output)
            .lines()
            .filter(|l| l.contains(" inner "))
            .count()
    };
    for (caps, attach) in [
        ("+bpf,+perfmon", None),
        ("+bpf,+perfmon,+sys_admin", Some("perf-event")),
    ] {
        let output = with_capabilities(caps, attach, &config, &demo).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{caps}: {}",
            support::stderr(&output)
        );
        assert_eq!(inner_spans(&output), 1, "{}", support::stderr(&output));
    }

    for (caps, attach, message) in [
        (
            "+bpf",
            None,
            "spanprobe needs CAP_BPF and CAP_PERFMON; missing CAP_PERFMON",
        ),
        (
            "+bpf,+perfmon",
            Some("perf-event"),
            "spanprobe needs CAP_BPF and CAP_PERFMON, and CAP_SYS_ADMIN to attach \
             perf-event uprobes; missing CAP_SYS_ADMIN",
        ),
    ] {
        let output = with_capabilities(caps, attach, &config, &demo).await;
        assert_eq!(output.status.code(), Some(1), "{caps}");
        assert_eq!(support::stderr(&output).trim(), message);
        assert!(!support::stdout(&output).contains("demo["), "nothing ran");
    }
}
