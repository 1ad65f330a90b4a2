//! Values inside arrays at every rank, unions, nested structs and C++ references
//! (`tests/programs/arrays.h`): the offsets `init --members` prints for them are the
//! compiler's, an index past a known bound is refused, and `path`s through them read what the
//! program wrote.

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};
use support::scenario::{Scenario, Workdir, assert_exit, assert_has_all, named, probe};

/// One value `init --members` offers: its parameter's slot, its path, and the offsets it
/// resolves to.
#[derive(Debug)]
struct Offer {
    slot: u8,
    path: String,
    offsets: Vec<i64>,
}

/// The offers in `init`'s text: `# - { index: 0, name: g.tag, path: '->tag' }  # char, read
/// as char, offsets [0]`.
fn offers(text: &str) -> Vec<Offer> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("# - { index: "))
        .map(|offer| {
            let (slot, rest) = offer.split_once(',').expect("an index");
            let path = rest.split_once("path: ").expect("a path").1;
            let path = path.split_once(" }").expect("the entry's end").0;
            let path = path.trim_matches('\'').replace("''", "'");
            let offsets = rest.rsplit_once("offsets [").expect("offsets").1;
            let offsets = offsets.trim_end_matches(']').split(", ");
            Offer {
                slot: slot.parse().expect("a slot"),
                path,
                offsets: offsets.map(|o| o.parse().expect("an offset")).collect(),
            }
        })
        .collect()
}

/// What the compiler says each of `offers` is from the start of what its parameter points
/// to: a program declares an object of that type per slot (`objects`, C declarations named
/// `o<slot>`) and prints each value's address minus the object's, by the same path
/// (`->y[1][0]` of slot 0 is `o0.y[1][0]`), compiled from the same header by `compiler`.
fn compiler_offsets(
    dir: &Path,
    compiler: &str,
    objects: &[&str],
    offers: &[Offer],
) -> BTreeMap<(u8, String), i64> {
    let header = support::programs().join("arrays.h");
    let mut source = format!("#include \"{}\"\n#include <stdio.h>\n", header.display());
    for object in objects {
        source.push_str(&format!("static {object};\n"));
    }
    source.push_str("int main(void) {\n");
    for offer in offers {
        let slot = offer.slot;
        let expression = match offer.path.strip_prefix("->") {
            Some(member) => format!(".{member}"),
            None => offer.path.clone(),
        };
        source.push_str(&format!(
            "    printf(\"%d %s %td\\n\", {slot}, \"{}\", (char *)&(o{slot}{expression}) - (char *)&o{slot});\n",
            offer.path
        ));
    }
    source.push_str("    return 0;\n}\n");
    let extension = if compiler == "g++" { "cpp" } else { "c" };
    let file = dir.join(format!("offsets.{extension}"));
    std::fs::write(&file, &source).unwrap();
    let binary = dir.join(format!("offsets-{extension}"));
    let built = Command::new(compiler)
        .arg("-o")
        .arg(&binary)
        .arg(&file)
        .output()
        .expect("the compiler runs");
    assert!(
        built.status.success(),
        "{source}\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let output = Command::new(&binary).output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields = line.split(' ');
            let slot = fields.next().unwrap().parse().unwrap();
            let path = fields.next().unwrap().to_owned();
            let offset = fields.next().unwrap().parse().unwrap();
            ((slot, path), offset)
        })
        .collect()
}

/// `init --members BINARY FUNCTION`'s offers, after checking each one's offset (the first of
/// its chain: nothing inside a parameter's target is behind another pointer) against the
/// compiler's, and that they include `expected`.
async fn offers_match_the_compiler(
    dir: &Path,
    binary: &Path,
    function: &str,
    compiler: &str,
    objects: &[&str],
    expected: &[(u8, &str)],
) -> Vec<Offer> {
    let init =
        support::spanprobe_with(&["init", "--members", binary.to_str().unwrap(), function]).await;
    assert_exit(&init, 0);
    let text = support::stdout(&init);
    let offers = offers(&text);
    let compiler = compiler_offsets(dir, compiler, objects, &offers);
    let wrong: Vec<_> = offers
        .iter()
        .filter(|offer| compiler.get(&(offer.slot, offer.path.clone())) != Some(&offer.offsets[0]))
        .collect();
    assert!(
        wrong.is_empty(),
        "{wrong:?} against {compiler:?} in\n{text}"
    );
    for (slot, path) in expected {
        assert!(
            offers
                .iter()
                .any(|o| (o.slot, o.path.as_str()) == (*slot, *path)),
            "{path} of slot {slot} not offered in\n{text}"
        );
    }
    offers
}

fn arrays_c(dir: &Path) -> PathBuf {
    support::compile_c(&support::programs().join("arrays.c"), dir, "arrays", &[])
}

fn arrays_cpp(dir: &Path) -> PathBuf {
    support::compile_cpp(&support::programs().join("arrays.cpp"), dir, "arrays-cpp")
}

#[tokio::test]
async fn init_prints_the_compilers_offsets_for_nested_arrays_unions_and_references() {
    let dir = Workdir::new();
    let c = offers_match_the_compiler(
        dir.path(),
        &arrays_c(dir.path()),
        "probe_grid",
        "gcc",
        &["struct grid o0", "union value o1"],
        &[
            (0, "->tag"),
            (0, "->y[0][0]"),
            (0, "->y[1][1]"),
            (0, "->cube[1][2][3]"),
            (0, "->pts[2].y"),
            (0, "->corners[1][1].y"),
            (0, "->v.p.y"),
            (0, "->anon.a"),
            (0, "->anon.bs"),
            (0, "->names[2]"),
            (0, "->rows[1][2]"),
            (0, "->label"),
            (0, "->x[3]"),
            (1, "->l"),
            (1, "->p.y"),
        ],
    )
    .await;
    // A flexible array member may hold nothing: it is not offered.
    assert!(!c.iter().any(|offer| offer.path.starts_with("->tail")));

    offers_match_the_compiler(
        dir.path(),
        &arrays_cpp(dir.path()),
        "touch",
        "g++",
        &["grid o0", "int o1[10]", "point o2"],
        &[
            (0, ".y[1][1]"),
            (0, ".cube[1][2][3]"),
            (0, ".corners[1][1].y"),
            (0, ".anon.b"),
            (1, "[0]"),
            (1, "[9]"),
            (2, ".y"),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_index_past_a_known_bound_is_refused_by_check() {
    let dir = Workdir::new();
    let binary = arrays_c(dir.path());
    let arg = |name: &str, path: &str| json!({ "index": 0, "name": name, "path": path });
    let functions = json!([{ "symbol": "probe_grid", "args": [
        arg("x", "->x[4]"),
        arg("row", "->y[1][2]"),
        arg("whole_row", "->y[1]"),
        arg("tail", "->tail[100]"),
    ] }]);
    let stderr = dir
        .check(&json!({ "probes": [probe(&binary, functions)] }), 2)
        .await;
    assert_has_all(
        &stderr,
        &[
            "args[0].path: ",
            "cannot resolve `->x[4]`: `[4]`: index 4 is out of bounds of `x` (int[4]): its \
             indexes are 0 to 3",
            "args[1].path: ",
            "`[2]`: index 2 is out of bounds of `y[1]` (int[2]): its indexes are 0 to 1",
            "args[2].path: ",
            "cannot resolve `->y[1]`: the value is an array, int[2], which no type reads as a \
             whole",
        ],
    );
    // A flexible array member has no bound to check.
    assert!(!stderr.contains("args[3]"), "{stderr}");
}

/// The one span called `name`.
fn one<'a>(
    spans: &'a [support::receiver::ReceivedSpan],
    name: &str,
) -> &'a support::receiver::ReceivedSpan {
    let [span] = named(spans, name)[..] else {
        panic!("not one {name} in {spans:#?}")
    };
    span
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_read_every_rank_and_through_references() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = arrays_c(s.path());
    let at = |index: u8, name: &str, path: &str| -> Value {
        json!({ "index": index, "name": name, "path": path })
    };
    let functions = json!([{ "symbol": "probe_grid", "args": [
        at(0, "y10", "->y[1][0]"),
        at(0, "y01", "->y[0][1]"),
        at(0, "cube", "->cube[1][2][3]"),
        at(0, "rows", "->rows[1][2]"),
        at(0, "name", "->names[2]"),
        at(0, "tail", "->tail[3]"),
        at(0, "corner", "->corners[1][1].y"),
        at(1, "i", "->i"),
    ] }]);
    let (_, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let grid = one(&spans, "probe_grid");
    let ints = ["y10", "y01", "cube", "rows", "tail", "corner", "i"].map(|a| grid.int_attr(a));
    assert_eq!(
        ints,
        [11, 2, 123, 12, 3, 11, 9].map(Some),
        "{:?}",
        grid.span.attributes
    );
    assert_eq!(grid.str_attr("name"), Some("ef"));

    // C++: `.member` and `[n]` through references, to a struct and to an array.
    let s = Scenario::start().await;
    let binary = arrays_cpp(s.path());
    let functions = json!([{ "symbol": "touch", "args": [
        at(1, "second", "[1]"),
        at(1, "last", "[9]"),
        at(0, "y10", ".y[1][0]"),
        at(0, "vy", ".v.p.y"),
        at(2, "pty", ".y"),
    ] }]);
    let (_, spans) = s
        .trace(&s.config(&binary, functions), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let touch = one(&spans, "touch");
    let ints = ["second", "last", "y10", "vy", "pty"].map(|a| touch.int_attr(a));
    assert_eq!(
        ints,
        [11, 99, 11, 7, 6].map(Some),
        "{:?}",
        touch.span.attributes
    );
}
