//! Go programs as they are shipped: stripped, linked with cgo (every program that imports
//! `net`), position-independent, externally linked; Debian's own from apt. Their Go functions
//! are named by `.gopclntab` beside the C functions of `.dynsym`; a name that exists is exact
//! (`pkg.(*T).M`, `pkg.Sum[...]`); and a config of thousands of entries reads the binary once.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::json;
use support::scenario::{Scenario, Workdir, assert_exit, named};

/// How `tests/programs/gonet` is built: name, `go build` flags.
const BUILDS: [(&str, &[&str]); 4] = [
    ("stripped", &["-ldflags=-s -w"]),
    ("pie", &["-buildmode=pie", "-ldflags=-s -w"]),
    ("external", &["-ldflags=-linkmode=external -s -w"]),
    // As Debian builds its Go programs: the table is merged into `.data.rel.ro`.
    (
        "pie-external",
        &["-buildmode=pie", "-ldflags=-linkmode=external -s -w"],
    ),
];

/// The functions of gonet that the tests look at.
const FUNCTIONS: [&str; 4] = [
    "main.handle",
    "main.(*order).apply",
    "main.(*suborder).apply",
    "main.main",
];

/// `tests/programs/gonet` built into `dir/name` with `flags`.
fn go_build_with(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let output = dir.join(name);
    let built = std::process::Command::new("go")
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&output)
        .arg(".")
        .current_dir(support::programs().join("gonet"))
        .output()
        .expect("go runs (scripts/setup.sh installs golang-go)");
    assert!(
        built.status.success(),
        "go build {flags:?}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    output
}

/// `flags` without what strips the symbol table: the same build, with its symbols.
fn unstripped(flags: &[&str]) -> Vec<String> {
    flags
        .iter()
        .map(|flag| flag.replace(" -s -w", "").replace("-s -w", ""))
        .filter(|flag| flag != "-ldflags=")
        .collect()
}

/// The addresses `go tool nm` gives `FUNCTIONS` in `binary`.
fn go_nm(binary: &Path) -> BTreeMap<String, u64> {
    let output = std::process::Command::new("go")
        .args(["tool", "nm"])
        .arg(binary)
        .output()
        .expect("go tool nm runs");
    assert!(output.status.success(), "go tool nm {}", binary.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (address, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
            // `t` where an external linker made them local.
            (kind.eq_ignore_ascii_case("t") && FUNCTIONS.contains(&name))
                .then(|| (name.to_owned(), u64::from_str_radix(address, 16).ok()))
                .and_then(|(name, address)| Some((name, address?)))
        })
        .collect()
}

/// The lines of `spanprobe symbols BINARY PATTERN`, as (address, table, name).
async fn symbols(binary: &Path, pattern: &str) -> Vec<(u64, String, String)> {
    let output = support::spanprobe_with(&["symbols", binary.to_str().unwrap(), pattern]).await;
    assert_exit(&output, 0);
    support::stdout(&output)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = u64::from_str_radix(fields[0].trim_start_matches("0x"), 16).unwrap();
            (address, fields[2].to_owned(), fields[3..].join(" "))
        })
        .collect()
}

/// Stripped, PIE, externally linked: each build's Go functions are found in its `.gopclntab`
/// at the addresses `go tool nm` gives them in the same build unstripped, beside the C
/// functions cgo exports from `.dynsym`.
#[tokio::test]
async fn stripped_cgo_builds_name_their_go_functions_where_the_symbol_table_does() {
    let dir = Workdir::new();
    for (name, flags) in BUILDS {
        let stripped = go_build_with(dir.path(), name, flags);
        let flags = unstripped(flags);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let full = go_build_with(dir.path(), &format!("{name}-full"), &flags);
        let expected = go_nm(&full);
        assert_eq!(expected.len(), FUNCTIONS.len(), "{name}: {expected:?}");
        let found: BTreeMap<String, u64> = symbols(&stripped, "main.*")
            .await
            .into_iter()
            .filter(|(_, _, function)| FUNCTIONS.contains(&function.as_str()))
            .map(|(address, table, function)| {
                assert_eq!(table, ".gopclntab", "{name}: {function}");
                (function, address)
            })
            .collect();
        assert_eq!(found, expected, "{name}");
        let exported = symbols(&stripped, "crosscall2").await;
        assert_eq!(exported.len(), 1, "{name}: {exported:?}");
        assert_eq!(exported[0].1, ".dynsym", "{name}");
    }
}

/// Each stripped build traced as it runs: spans for its Go functions, found by name; an exact
/// pointer method is its own type's only.
#[tokio::test(flavor = "multi_thread")]
async fn stripped_cgo_builds_are_traced_by_their_go_names() {
    support::needs_root!();
    for (name, flags) in BUILDS {
        // A receiver each: the spans of one build only.
        let s = Scenario::start().await;
        let binary = go_build_with(s.path(), name, flags);
        let functions = support::scenario::symbols(&["main.handle", "main.(*order).apply"]);
        let config = s.config(&binary, functions);
        let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
        assert_eq!(support::stdout(&output), "127.0.0.1 21 6 0.75\n", "{name}");
        let mut names: Vec<&str> = spans.iter().map(|span| span.name()).collect();
        names.sort_unstable();
        assert_eq!(names, ["main.(*order).apply", "main.handle"], "{name}");
    }
}

/// A name that exists verbatim is exact whatever its characters; one that does not is a glob;
/// `glob:` makes one of any name. Both unstripped (`.symtab`'s names) and stripped
/// (`.gopclntab` names each instantiation of a generic `main.Sum[...]`).
#[tokio::test]
async fn a_name_that_exists_is_exact_and_glob_makes_a_glob() {
    let s = Scenario::start().await;
    let full = go_build_with(s.path(), "full", &[]);
    let stripped = go_build_with(s.path(), "stripped", &["-ldflags=-s -w"]);
    let count = |report: &str| -> String {
        report
            .lines()
            .next()
            .and_then(|line| line.split(": ok, ").nth(1))
            .unwrap_or_default()
            .to_owned()
    };
    for (binary, symbol, probed) in [
        (&full, "main.(*order).apply", "1 function to probe"),
        (&full, "main.Sum[go.shape.int_0]", "1 function to probe"),
        (&full, "main.Sum[[]*", "2 functions to probe"),
        (&full, "glob:main.(*order).apply", "2 functions to probe"),
        (&stripped, "main.(*order).apply", "1 function to probe"),
        (&stripped, "main.Sum[...]", "2 functions to probe"),
        (&stripped, "main.(*).apply", "2 functions to probe"),
    ] {
        let config = s.config(binary, json!([{ "symbol": symbol }]));
        let report = s.check(&config, 0).await;
        assert_eq!(count(&report), probed, "{symbol}: {report}");
    }
    // An exact entry claims its function before a glob that matches it too.
    let config = s.config(
        &full,
        json!([{ "symbol": "main.(*).apply" }, { "symbol": "main.(*order).apply" }]),
    );
    let report = s.check(&config, 0).await;
    assert_eq!(count(&report), "2 functions to probe", "{report}");
    let config = s.config(
        &full,
        json!([{ "symbol": "main.(*order).apply", "exclude": ["main.(*suborder).apply"] }]),
    );
    let refused = s.check(&config, 2).await;
    assert!(
        refused.contains(
            "`exclude` leaves names out of a glob, and `main.(*order).apply` names one function"
        ),
        "{refused}"
    );
}

/// Debian's stripped cgo programs (restic, age from apt): their Go functions are named by
/// `.gopclntab`, C's `main` by `.dynsym`, and each is traced by its Go names.
#[tokio::test(flavor = "multi_thread")]
async fn debian_s_stripped_cgo_programs_are_traced_by_their_go_names() {
    support::needs_root!();
    let s = Scenario::start().await;
    for (program, function, command) in [
        (
            "/usr/bin/restic",
            "github.com/spf13/cobra.(*Command).ExecuteC",
            &["/usr/bin/restic", "version"][..],
        ),
        (
            "/usr/bin/age",
            "flag.(*FlagSet).Parse",
            &["/usr/bin/age", "--version"][..],
        ),
    ] {
        assert!(
            Path::new(program).exists(),
            "{program} is missing: scripts/setup.sh installs it"
        );
        let found = symbols(Path::new(program), "main.main").await;
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, ".gopclntab", "{program}");
        let c_main = symbols(Path::new(program), "main").await;
        assert_eq!(c_main.len(), 1, "{c_main:?}");
        assert_eq!(c_main[0].1, ".dynsym", "{program}");
        let config = s.config(program, json!([{ "symbol": function }]));
        let (_, spans) = s.trace(&config, command).exits(0).await;
        assert_eq!(named(&spans, function).len(), 1, "{program}: {spans:?}");
    }
}

/// `check` of the functions of several packages, one entry each as `init` writes them, opens
/// the binary as often as a glob per package: it is parsed once per run, not once per entry.
#[tokio::test]
async fn a_config_of_many_entries_reads_the_binary_as_often_as_globs() {
    const PACKAGES: [&str; 7] = [
        "reflect.*",
        "fmt.*",
        "strconv.*",
        "sync.*",
        "os.*",
        "net.*",
        "time.*",
    ];
    let dir = Workdir::new();
    let binary = go_build_with(dir.path(), "app", &["-ldflags=-s -w"]);
    let path = binary.to_str().unwrap();
    let init = support::spanprobe_with(&[&["init", path][..], &PACKAGES].concat()).await;
    assert_exit(&init, 0);
    let all = dir.path().join("all.yaml");
    std::fs::write(&all, support::stdout(&init)).unwrap();
    let entries = support::stdout(&init).matches("- symbol:").count();
    assert!(entries > 200, "{entries} entries");
    let glob = dir.path().join("glob.yaml");
    let mut yaml = format!("probes:\n  - binary: {path}\n    functions:\n");
    for package in PACKAGES {
        yaml.push_str(&format!("      - symbol: '{package}'\n"));
    }
    std::fs::write(&glob, yaml).unwrap();
    let opens = |config: &Path| {
        let traced = std::process::Command::new("strace")
            .args(["-f", "-e", "trace=openat", "-o"])
            .arg(dir.path().join("strace.log"))
            .arg(support::spanprobe())
            .args(["check", "-c"])
            .arg(config)
            .output()
            .expect("strace runs (scripts/setup.sh installs it)");
        assert_exit(&traced, 0);
        let log = std::fs::read_to_string(dir.path().join("strace.log")).unwrap();
        log.lines()
            .filter(|line| line.contains(&format!("\"{path}\"")))
            .count()
    };
    let (for_all, for_glob) = (opens(&all), opens(&glob));
    assert!(for_glob > 0);
    assert_eq!(for_all, for_glob, "{entries} entries");
}
