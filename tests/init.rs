//! What `spanprobe init` writes for a new user: the service named as the user named the
//! program, a C buffer read with the size that follows it, and USDT probes that fire on every
//! line or object left commented out. Whatever it writes passes `check` and traces as written.

mod support;

use std::path::Path;

use support::scenario::{Scenario, Workdir, assert_exit, assert_has_all, named};

/// `spanprobe init ARGS...` with PATH starting at `path_dir`, asserting it succeeded: its
/// config.
async fn init_in(path_dir: Option<&Path>, args: &[&str]) -> String {
    let mut command = tokio::process::Command::new(support::spanprobe());
    command.arg("init").args(args);
    if let Some(dir) = path_dir {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_owned()];
        dirs.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    let output = command.output().await.expect("spanprobe runs");
    assert_exit(&output, 0);
    support::stdout(&output)
}

async fn init(args: &[&str]) -> String {
    init_in(None, args).await
}

/// Writes `yaml` and asserts `spanprobe check` accepts it as it is.
async fn check_passes(dir: &Workdir, yaml: &str) {
    let config = dir.write_yaml(yaml);
    let check = support::spanprobe_with(&["check", "-c", config.to_str().unwrap()]).await;
    assert_exit(&check, 0);
}

#[tokio::test]
async fn the_service_is_named_as_the_user_named_the_program() {
    let dir = Workdir::new();
    let real = dir.c_program("buffers");
    // As Debian installs redis-server: a link to redis-check-rdb.
    let link = dir.path().join("given-name");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let by_path = init(&[link.to_str().unwrap(), "send_text"]).await;
    assert!(
        by_path.contains("\nservice_name: given-name\n"),
        "{by_path}"
    );
    // The probe is on the file itself, which the link leads to.
    assert!(
        by_path.contains(&format!("  - binary: {}\n", real.display())),
        "{by_path}"
    );
    let in_path = init_in(Some(dir.path()), &["given-name", "send_text"]).await;
    assert!(
        in_path.contains("\nservice_name: given-name\n"),
        "{in_path}"
    );
    check_passes(&dir, &in_path).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pointer_and_the_size_after_it_are_one_value() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("buffers");
    let functions = [
        "send_text",
        "fill_buffer",
        "put_bytes",
        "sum_ints",
        "signed_len",
        "with_flags",
    ];
    let mut args = vec![binary.to_str().unwrap()];
    args.extend(functions);
    let text = init(&args).await;
    assert_has_all(
        &text,
        &[
            "          - { index: 1, name: s, type: str, len_arg: 2 }  # const char *, n bytes\n",
            "          - { index: 2, name: n, type: u64 }  # size_t\n",
            "          - { index: 0, name: buf, type: bytes, len_arg: 1 }  # char *, len bytes as \
             at entry; `at: return` reads what the call wrote\n",
            "          - { index: 0, name: data, type: bytes, len_arg: 1 }  # const void *, nbytes \
             bytes\n",
            // Not bytes, a signed count, a count not named as one: not paired.
            "          - { index: 0, name: v, type: ptr }  # const int *\n",
            "      - symbol: signed_len\n        # ",
            "          - { index: 0, name: s, type: str }  # const char *\n          - { index: \
             1, name: len, type: i32 }",
            "          - { index: 0, name: s, type: str }  # const char *\n          - { index: \
             1, name: flags, type: u64 }",
        ],
    );
    // As written, it checks and traces: each buffer no longer than its count.
    check_passes(&s, &text).await;
    let (_, spans) = s
        .trace_yaml(&text, &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let one = |name: &str| {
        let [span] = named(&spans, name)[..] else {
            panic!("not one {name} in {spans:#?}")
        };
        span
    };
    assert_eq!(one("send_text").str_attr("s"), Some("hello"));
    // Bytes are exported in hex: "buffer", "wxy".
    assert_eq!(one("fill_buffer").str_attr("buf"), Some("627566666572"));
    assert_eq!(one("put_bytes").str_attr("data"), Some("777879"));
    assert_eq!(one("with_flags").str_attr("s"), Some("xyz"));
}

/// `init --usdt` of `tests/programs/busy_usdt.c` for `patterns`.
async fn usdt_init(binary: &Path, patterns: &[&str]) -> std::process::Output {
    let mut args = vec!["init", "--usdt", binary.to_str().unwrap()];
    args.extend(patterns);
    support::spanprobe_with(&args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_that_fire_on_every_line_are_written_commented_out() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("busy_usdt");
    let output = usdt_init(&binary, &[]).await;
    assert_exit(&output, 0);
    let text = support::stdout(&output);
    assert_has_all(
        &text,
        &[
            "      - probe: 'lang:function__entry'\n        until: 'lang:function__return'\n",
            "      # lang:line fires on every line the interpreter runs: a span each time would \
             flood the\n",
            "      # - probe: 'lang:line'\n      #   args:\n      #     - { index: 0, name: arg0 }",
            "      # lang:object__create fires for every object created",
            "      # - probe: 'lang:object__create'\n",
            "      - probe: 'lang:start'\n",
        ],
    );
    // Safe as written: a span per call, none per line.
    check_passes(&s, &text).await;
    let (_, spans) = s
        .trace_yaml(&text, &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    assert_eq!(named(&spans, "function").len(), 3);
    assert_eq!(named(&spans, "lang:start").len(), 1);
    assert!(named(&spans, "lang:line").is_empty());

    // Uncommented, it traces every line.
    let uncommented = uncomment(&text, "lang:line");
    let s = Scenario::start().await;
    let (_, spans) = s
        .trace_yaml(&uncommented, &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    assert_eq!(named(&spans, "lang:line").len(), 12);
}

/// `text` with the commented-out entry of `probe` restored, as a user would: `# ` taken out
/// of its lines.
fn uncomment(text: &str, probe: &str) -> String {
    let start = format!("      # - probe: '{probe}'");
    let mut inside = false;
    let mut out = String::new();
    for line in text.lines() {
        inside = line == start || (inside && line.starts_with("      #   "));
        let line = match inside {
            true => line.replacen("# ", "", 1),
            false => line.to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_probe_named_exactly_is_written_as_asked() {
    let dir = Workdir::new();
    let binary = dir.c_program("busy_usdt");
    let output = usdt_init(&binary, &["lang:line"]).await;
    assert_exit(&output, 0);
    let text = support::stdout(&output);
    assert!(text.contains("\n      - probe: 'lang:line'\n"), "{text}");
    check_passes(&dir, &text).await;
    // A glob that finds only such probes would write nothing to run: it says so.
    let output = usdt_init(&binary, &["lang:*line*"]).await;
    assert_exit(&output, 1);
    assert!(
        support::stderr(&output).contains(
            "every probe matching `lang:*line*` fires too often to trace by default (lang:line): \
             name one exactly to write it anyway"
        ),
        "{}",
        support::stderr(&output)
    );
}

#[tokio::test]
async fn python_line_probe_is_left_out_of_a_config_that_checks() {
    // Debian's python3.11 is built with its USDT probes.
    let python = Path::new("/usr/bin/python3.11");
    if !python.exists() {
        eprintln!("skipped: no {}", python.display());
        return;
    }
    let dir = Workdir::new();
    let text = init(&["--usdt", python.to_str().unwrap()]).await;
    assert_has_all(
        &text,
        &[
            "      # - probe: 'python:line'\n",
            "      - probe: 'python:function__entry'\n        until: 'python:function__return'\n",
        ],
    );
    check_passes(&dir, &text).await;
}

/// What `init` writes for every function of each fixture (C, C++, Rust, Go with generics and
/// structs by value), and for Debian's own binaries (libc and python3.11 through their debug
/// files, libsqlite3 without debug info, restic's stripped cgo Go), passes `check` as written.
#[tokio::test]
async fn what_init_writes_passes_check_as_written() {
    let dir = Workdir::new();
    let (greet, _) = dir.greet();
    let go = support::go_build(dir.path(), "gotypes", "gotypes");
    let fixtures = [
        dir.calls("calls", &[]),
        dir.c_program("fields"),
        dir.c_program("outputs"),
        dir.c_program("buffers"),
        dir.shapes(),
        dir.rusty(true),
        greet,
        go,
    ];
    let mut inits: Vec<Vec<String>> = fixtures
        .iter()
        .map(|binary| vec![binary.display().to_string()])
        .collect();
    for real in [
        ["libc.so.6", "str*"],
        ["/usr/bin/python3.11", "PyList_*"],
        ["libsqlite3.so.0", "sqlite3_*"],
        ["/usr/bin/restic", "main.*"],
    ] {
        inits.push(real.map(String::from).to_vec());
    }
    for args in inits {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let written = init(&args).await;
        let config = dir.write_yaml(&written);
        let check = support::spanprobe_with(&["check", "-c", config.to_str().unwrap()]).await;
        assert_eq!(
            check.status.code(),
            Some(0),
            "init {args:?} wrote what check refuses:\n{}\n{written}",
            support::stderr(&check)
        );
    }
}
