//! Probes moved past a prologue's first instructions onto one the kernel emulates read what a
//! probe at the entry reads, on libraries no one here wrote: every function of Debian's libz,
//! libsqlite3 and libxml2 that `check` moves is probed twice, at its entry (by `offset`, which stays
//! there) and where it moved (by `symbol`), each reading its six argument registers and its
//! return value; real programs call them. Each call then has one span at each place, the moved
//! one a child of the entry's, with the same arguments and return value. Then again reading
//! the first argument only, which lets probes move past writes to the other five.

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::{
    receiver::ReceivedSpan,
    scenario::{Scenario, by_id, probe},
};

const LIBZ: &str = "/usr/lib/x86_64-linux-gnu/libz.so.1";
const LIBSQLITE3: &str = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0";
const LIBXML2: &str = "/usr/lib/x86_64-linux-gnu/libxml2.so.2";

/// A function `check` moved: its name and the file offset of its entry.
struct Moved {
    name: String,
    entry: u64,
    skip: u64,
}

/// The functions of `library` whose probes `check` moves past their first instructions when
/// they read the first `reads` argument registers, from its report on every function (`file
/// offset 0x.. (+N past `...`, onto `...`, which the kernel emulates)`).
async fn moved(s: &Scenario, library: &str, reads: u8) -> Vec<Moved> {
    let all = json!([{ "symbol": "*", "args": args(reads) }]);
    let config = json!({ "probes": [probe(library, all)] });
    let report = s.check(&config, 0).await;
    report
        .lines()
        .filter(|line| line.contains("which the kernel emulates)"))
        .filter_map(|line| {
            let (name, rest) = line.trim_start().split_once(": ")?;
            let offset = rest.split("file offset 0x").nth(1)?.split(' ').next()?;
            let offset = u64::from_str_radix(offset, 16).ok()?;
            let skip = rest.split("(+").nth(1)?.split(' ').next()?.parse().ok()?;
            Some(Moved {
                name: name.to_owned(),
                entry: offset - skip,
                skip,
            })
        })
        .collect()
}

/// The first `reads` arguments, as u64 values named `a0`...
fn args(reads: u8) -> Vec<Value> {
    (0..reads)
        .map(|index| json!({ "index": index, "name": format!("a{index}"), "type": "u64" }))
        .collect()
}

/// Each of `functions` probed at its entry (`<name>@entry`) and where it moved, reading the
/// first `reads` argument registers and the return value at both.
fn both_places(functions: &[Moved], reads: u8) -> Value {
    let args = args(reads);
    let ret = json!({ "name": "ret", "type": "u64" });
    functions
        .iter()
        .flat_map(|function| {
            [
                json!({ "symbol": function.name, "args": args, "return": ret }),
                json!({
                    "offset": function.entry,
                    "span_name": format!("{}@entry", function.name),
                    "args": args,
                    "return": ret,
                }),
            ]
        })
        .collect()
}

/// What a span read: its arguments (up to six) and return value.
fn read(span: &ReceivedSpan) -> Vec<Option<i64>> {
    let keys = ["a0", "a1", "a2", "a3", "a4", "a5", "ret"];
    keys.iter().map(|key| span.int_attr(key)).collect()
}

/// Checks every span of a moved probe against its parent, the same call's span at the entry;
/// returns how many calls each moved function made.
fn compare(spans: &[ReceivedSpan], functions: &[Moved]) -> HashMap<String, usize> {
    let ids = by_id(spans);
    let mut calls = HashMap::new();
    for function in functions {
        let entry_name = format!("{}@entry", function.name);
        let at_entry = spans.iter().filter(|s| s.name() == entry_name).count();
        let moved: Vec<&ReceivedSpan> =
            spans.iter().filter(|s| s.name() == function.name).collect();
        // Once per call at each place: no branch brings a call back onto the moved probe.
        assert_eq!(
            moved.len(),
            at_entry,
            "{} (+{}): spans where it moved and at its entry",
            function.name,
            function.skip
        );
        for span in &moved {
            let parent = ids
                .get(&span.span.parent_span_id)
                .unwrap_or_else(|| panic!("{}: no parent span: {span:#?}", function.name));
            assert_eq!(parent.name(), entry_name, "{span:#?}");
            assert_eq!(
                read(span),
                read(parent),
                "{} (+{}): what the moved probe read, against the entry's",
                function.name,
                function.skip
            );
        }
        if !moved.is_empty() {
            calls.insert(function.name.clone(), moved.len());
        }
    }
    calls
}

#[tokio::test(flavor = "multi_thread")]
async fn moved_probes_read_what_entry_probes_read_in_real_libraries() {
    support::needs_root!();
    let s = Scenario::start().await;
    let libz = moved(&s, LIBZ, 6).await;
    let sqlite = moved(&s, LIBSQLITE3, 6).await;
    let libxml2 = moved(&s, LIBXML2, 6).await;
    // Debian's builds keep no frame pointers: many prologues start with a test or a move.
    let counts = (libz.len(), sqlite.len(), libxml2.len());
    assert!(
        counts.0 >= 20 && counts.1 >= 100 && counts.2 >= 100,
        "{counts:?}"
    );
    let config = json!({
        "exporter": { "otlp": { "endpoint": s.receiver.grpc_endpoint() } },
        "probes": [
            probe(LIBZ, both_places(&libz, 6)),
            probe(LIBSQLITE3, both_places(&sqlite, 6)),
            probe(LIBXML2, both_places(&libxml2, 6)),
        ],
    });
    let (output, spans) = s.trace(&config, &["sh", "-c", SCRIPT]).exits(0).await;
    assert_eq!(support::stdout(&output), "b\ny\n");
    let calls_libz = compare(&spans, &libz);
    let calls_sqlite = compare(&spans, &sqlite);
    let calls_libxml2 = compare(&spans, &libxml2);
    // The programs called some of each library's moved functions.
    assert!(calls_libz.contains_key("deflate"), "{calls_libz:?}");
    assert!(calls_sqlite.len() >= 10, "{calls_sqlite:?}");
    assert!(calls_libxml2.len() >= 10, "{calls_libxml2:?}");
}

/// A probe that reads fewer argument registers moves past instructions that write the others
/// (an `xor %edx,%edx` or `mov $N,%ecx` before a tail call, say), and still reads what the
/// entry's reads.
#[tokio::test(flavor = "multi_thread")]
async fn probes_reading_fewer_arguments_move_past_writes_to_the_others() {
    support::needs_root!();
    let s = Scenario::start().await;
    let mut newly = Vec::new();
    for library in [LIBZ, LIBSQLITE3, LIBXML2] {
        let before: Vec<String> = moved(&s, library, 6)
            .await
            .into_iter()
            .map(|m| m.name)
            .collect();
        let now: Vec<Moved> = moved(&s, library, 1)
            .await
            .into_iter()
            .filter(|m| !before.contains(&m.name))
            .collect();
        newly.push((library, now));
    }
    let counts: Vec<usize> = newly.iter().map(|(_, now)| now.len()).collect();
    assert!(counts[1] >= 50 && counts[2] >= 50, "{counts:?}");
    let config = json!({
        "exporter": { "otlp": { "endpoint": s.receiver.grpc_endpoint() } },
        "probes": newly
            .iter()
            .map(|(library, now)| probe(library, both_places(now, 1)))
            .collect::<Vec<_>>(),
    });
    let (output, spans) = s.trace(&config, &["sh", "-c", SCRIPT]).exits(0).await;
    assert_eq!(support::stdout(&output), "b\ny\n");
    let called: usize = newly
        .iter()
        .map(|(_, now)| compare(&spans, now).len())
        .sum();
    assert!(
        called >= 10,
        "{called} of the newly moved functions were called"
    );
}

/// Real programs calling the three libraries: python's zlib, sqlite3's shell, xmllint.
const SCRIPT: &str = "python3 -c 'import zlib; d = zlib.compress(bytes(range(256)) * 64, 9); \
                  zlib.decompress(d); z = zlib.compressobj(); z.compress(d); z.flush()' && \
                  sqlite3 :memory: 'create table t(x text); insert into t values (\"a\"), (\"b\"); \
                  select group_concat(x) from t where x > \"a\";' && \
                  echo '<a><b n=\"1\">x</b><b n=\"2\">y</b></a>' | xmllint --xpath 'string(//b[@n=2])' -";
