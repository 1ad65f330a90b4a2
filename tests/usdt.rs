//! USDT probes as spans: start/until pairs matched per thread, point probes, arguments from
//! registers, memory and constants as the notes say, semaphores set by the kernel; on our own
//! program (sys/sdt.h) and on PostgreSQL 15's probes, in a server started after attaching.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::{
    receiver::ReceivedSpan,
    scenario::{Scenario, Workdir, assert_exit, assert_has_all, by_id, named},
    usdt,
};

/// `s`'s config with `usdt` probes of `binary` in place of functions.
fn usdt_config(s: &Scenario, binary: &Path, usdt: Value) -> Value {
    let mut config = s.config(binary, json!([]));
    config["probes"] = json!([{ "binary": binary, "usdt": usdt }]);
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn start_until_pairs_point_probes_and_a_semaphore() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("usdt");
    let (output, spans) = s
        .trace(
            &usdt_config(&s, &binary, usdt::probes()),
            &[binary.to_str().unwrap()],
        )
        .exits(0)
        .await;
    // The semaphore was set while the probes were attached: `guarded` fired.
    assert!(
        support::stdout(&output).contains("usdt 99 guarded 1"),
        "{}",
        support::stdout(&output)
    );
    let by_id = by_id(&spans);
    let mut requests = named(&spans, "request");
    requests.sort_by_key(|span| span.int_attr("id"));
    let values: Vec<_> = requests
        .iter()
        .map(|r| {
            let read = (r.int_attr("id"), r.str_attr("name"), r.int_attr("slot"));
            (read, r.int_attr("done_id"))
        })
        .collect();
    // A register, a string behind one, and an int in memory (`-4@-4(%rbp)`); at the end,
    // a register or a constant.
    assert_eq!(
        values,
        [
            ((Some(1), Some("alpha"), Some(101)), Some(1)),
            ((Some(2), Some("beta"), Some(102)), Some(2)),
            ((Some(3), Some("gamma"), Some(103)), Some(3)),
        ]
    );
    // Request 2 ends at the other site of `request__done`, before any step.
    let parent_id = |span: &ReceivedSpan| {
        by_id
            .get(&span.span.parent_span_id)
            .and_then(|parent| parent.int_attr("id"))
    };
    let mut steps: Vec<_> = named(&spans, "step")
        .iter()
        .map(|step| (step.int_attr("i"), parent_id(step), step.int_attr("result")))
        .collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            (Some(1), Some(1), Some(10)),
            (Some(2), Some(1), Some(20)),
            (Some(3), Some(3), Some(30)),
            (Some(4), Some(3), Some(40))
        ]
    );
    let marks = named(&spans, "app:mark");
    assert_eq!(marks.len(), 4);
    assert_eq!(marks.iter().filter(|m| parent_id(m).is_none()).count(), 1);
    for name in ["app:mark", "app:guarded"] {
        let points = named(&spans, name);
        for point in points
            .into_iter()
            .filter(|p| !p.span.parent_span_id.is_empty())
        {
            // No duration, inside its request.
            assert_eq!(point.bool_attr("spanprobe.entry_only"), Some(true));
            assert_eq!(
                point.span.start_time_unix_nano,
                point.span.end_time_unix_nano
            );
            if name == "app:mark" {
                assert_eq!(point.int_attr("seven"), Some(7), "a constant operand");
            } else {
                assert_eq!(point.int_attr("id"), parent_id(point));
            }
        }
    }
    for request in &requests {
        assert!(request.span.end_time_unix_nano > request.span.start_time_unix_nano);
        assert!(request.span.parent_span_id.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pair_past_the_depth_limit_leaves_the_spans_around_it_whole() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("usdt");
    let mut config = usdt_config(&s, &binary, usdt::probes());
    config["limits"] = json!({ "max_depth": 1 });
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    // Each step is nested one deeper than allowed: counted, and its end pops it, so that the
    // request's own end still closes the request.
    assert!(named(&spans, "step").is_empty());
    let requests = named(&spans, "request");
    assert_eq!(requests.len(), 3);
    for request in requests {
        assert_eq!(request.attr("spanprobe.incomplete"), None, "{request:#?}");
    }
    support::scenario::assert_stderr_has(&output, "depth_exceeded=4");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_open_spans_and_names_from_arguments() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("usdt");
    let usdt = json!([
        { "probe": "app:request__start", "until": "app:request__done",
          "span_name": "request {name}",
          "args": [{ "index": 0, "name": "id" }, { "index": 1, "name": "name", "type": "str" }] },
        { "probe": "app:mark", "event": true, "span_name": "mark {seven}",
          "args": [{ "index": 0, "name": "seven" }] },
    ]);
    let (_, spans) = s
        .trace(&usdt_config(&s, &binary, usdt), &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    let mut names: Vec<_> = spans.iter().map(ReceivedSpan::name).collect();
    names.sort();
    // The mark outside any request has no span to belong to: it is a span of its own.
    assert_eq!(
        names,
        ["mark 7", "request alpha", "request beta", "request gamma"]
    );
    for request in spans.iter().filter(|s| s.name().starts_with("request")) {
        let [event] = &request.span.events[..] else {
            panic!("one event: {request:#?}")
        };
        assert_eq!(event.name, "mark 7");
        assert!(event.time_unix_nano >= request.span.start_time_unix_nano);
        assert!(event.time_unix_nano <= request.span.end_time_unix_nano);
        let seven = event.attributes.iter().find(|kv| kv.key == "seven");
        assert!(format!("{seven:?}").contains("IntValue(7)"), "{seven:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpp_exception_is_an_event_of_the_span_it_is_thrown_in() {
    support::needs_root!();
    // libstdc++'s own `throw` probe, fired inside std::stoi, which the probed function calls
    // and whose exception it catches.
    let s = Scenario::start().await;
    let binary = support::compile_cpp(
        &support::programs().join("exceptions.cpp"),
        s.path(),
        "exceptions",
    );
    let mut config = s.config(
        &binary,
        json!([{ "symbol": "safe_parse", "args": [{ "index": 0, "name": "text", "type": "str" }],
                 "return": { "type": "i32" } }]),
    );
    config["probes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "binary": "libstdc++.so.6", "usdt": [{
            "probe": "libstdcxx:throw", "event": true, "span_name": "exception",
            // The thrown object's std::type_info: its name is the pointer after the vtable's.
            "args": [{ "index": 1, "name": "exception.type", "type": "str", "offsets": [8, 0] }],
        }] }));
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    assert_eq!(support::stdout(&output), "42 -1\n");
    let mut calls = named(&spans, "safe_parse");
    calls.sort_by_key(|c| c.int_attr("return_value"));
    let [failed, parsed] = calls[..] else {
        panic!("{spans:#?}")
    };
    assert!(parsed.span.events.is_empty());
    let [exception] = &failed.span.events[..] else {
        panic!("{failed:#?}")
    };
    assert_eq!(exception.name, "exception");
    let ty = exception
        .attributes
        .iter()
        .find(|kv| kv.key == "exception.type");
    assert!(format!("{ty:?}").contains("St16invalid_argument"), "{ty:?}");
}

#[tokio::test]
async fn check_and_symbols_show_sites_operands_and_semaphores() {
    let dir = Workdir::new();
    let binary = dir.c_program("usdt");
    let listed = support::spanprobe_with(&["symbols", "--usdt", binary.to_str().unwrap()]).await;
    assert_exit(&listed, 0);
    let listed = support::stdout(&listed);
    assert_eq!(
        listed.matches("app:request__done").count(),
        2,
        "two sites:\n{listed}"
    );
    assert!(listed.contains("app:mark  semaphore 0x"), "{listed}");
    assert!(listed.contains("args -4@$7"), "{listed}");

    let report = dir
        .check(
            &json!({
                "probes": [{ "binary": binary, "usdt": usdt::probes() }],
            }),
            0,
        )
        .await;
    assert_has_all(
        &report,
        &[
            "request: app:request__start at address 0x",
            "USDT site opening a span that its `until` closes, semaphore at file offset 0x",
            "ok, 8 USDT sites to probe",
            "args id: i64 (RDI), name: str up to 64 bytes (RSI), slot: i32 ([RBP-4])",
            "app:request__done: app:request__done at address",
            "USDT site closing the span its `probe` opened",
            "app:mark: app:mark at address",
            "USDT site: a span with no duration",
            "seven: i32 (constant 7)",
            "args done_id: i64 (RDX)",
            "args done_id: i64 (constant 2)",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_writes_a_usdt_section_that_traces_as_written() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = s.c_program("usdt");
    let init =
        support::spanprobe_with(&["init", "--usdt", binary.to_str().unwrap(), "app:*"]).await;
    assert_exit(&init, 0);
    let text = support::stdout(&init);
    assert_has_all(
        &text,
        &[
            "      - probe: 'app:request__start'\n        until: 'app:request__done'\n        span_name: request\n",
            "          - { index: 2, name: arg2 }  # -4@-4(%rbp)\n",
            "      - probe: 'app:mark'\n",
        ],
    );
    // An end probe is the `until` of its start, not an entry of its own.
    assert!(!text.contains("probe: 'app:request__done'"), "{text}");
    let (_, spans) = s
        .trace_yaml(&text, &[binary.to_str().unwrap()])
        .exits(0)
        .await;
    assert_eq!(named(&spans, "request").len(), 3);
    assert_eq!(named(&spans, "step").len(), 4);
    assert_eq!(named(&spans, "app:guarded").len(), 3);
}

#[tokio::test]
async fn unknown_probes_and_unreadable_arguments_say_why() {
    let dir = Workdir::new();
    let binary = dir.c_program("usdt");
    let demo = dir.demo();
    let stderr = dir
        .check(
            &json!({
                "probes": [
                    { "binary": binary, "usdt": [
                        { "probe": "app:request_start", "until": "app:request__dne" },
                        { "probe": "app:mark", "args": [
                            { "index": 0, "name": "text", "type": "str" },
                            { "index": 3, "name": "missing" },
                            { "index": 0, "name": "field", "path": "->x" },
                        ] },
                    ] },
                    { "binary": demo, "usdt": [{ "probe": "demo:start" }] },
                ],
            }),
            2,
        )
        .await;
    assert_has_all(
        &stderr,
        &[
            "probes[0].usdt[0].probe: ",
            "no USDT probe `app:request_start` (closest: `app:request__start`",
            "probes[0].usdt[0].until: ",
            "no USDT probe `app:request__dne` (closest: `app:request__done`",
            "probes[0].usdt[1].args[0]: ",
            "app:mark (the site at 0x",
            "argument 0 is a constant: there is no memory behind it to read",
            "probes[0].usdt[1].args[1]: ",
            "argument 3 does not exist: the probe has 1 argument(s)",
            "probes[0].usdt[1].args[2]: ",
            "`path` needs a function's DWARF parameters; at a USDT probe give the chain as `offsets`",
            "probes[1].usdt[0].probe: ",
            "no USDT probe `demo:start` (the binary has no USDT probes)",
        ],
    );
}

/// A PostgreSQL 15 cluster in a directory of its own, run by the `postgres` user (the server
/// refuses root), listening on a Unix socket there only.
struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
}

impl Postgres {
    const PORT: &str = "5432";

    fn init(dir: &Path) -> Postgres {
        let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
        let dir = dir.join("pg");
        std::fs::create_dir(&dir).unwrap();
        let postgres = Self::uid("postgres");
        std::os::unix::fs::chown(&dir, Some(postgres), None).unwrap();
        let cluster = Postgres { bin, dir };
        cluster.as_postgres(
            "initdb",
            &["-D", cluster.data().to_str().unwrap(), "-A", "trust"],
        );
        cluster
    }

    fn uid(user: &str) -> u32 {
        let output = std::process::Command::new("id")
            .args(["-u", user])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `program` (from PostgreSQL's bin directory) as `postgres`, and returns its output.
    fn as_postgres(&self, program: &str, args: &[&str]) -> String {
        let output = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let log = self.dir.join("log");
        let mut all = vec!["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap()];
        all.extend_from_slice(args);
        self.as_postgres("pg_ctl", &all);
    }

    fn start(&self) {
        let options = format!(
            "-k {} -p {} -c listen_addresses=''",
            self.dir.display(),
            Self::PORT
        );
        self.pg_ctl(&["-o", &options, "-w", "start"]);
    }

    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Runs each of `queries` through psql, one `-c` each; psql goes on past a failed one.
    fn psql(&self, queries: &[&str]) -> String {
        let dir = self.dir.to_str().unwrap();
        let mut args = vec!["-h", dir, "-p", Self::PORT, "-d", "postgres", "-X"];
        for query in queries {
            args.extend(["-c", query]);
        }
        let output = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .args(&args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_queries_with_their_parse_plan_and_execute() {
    support::needs_root!();
    let s = Scenario::start().await;
    // The bundled example, exporting to the test's receiver.
    let example =
        std::fs::read_to_string(support::repo_root().join("examples/postgres/postgres.yaml"))
            .unwrap();
    let endpoint = s.receiver.grpc_endpoint();
    let config = example.replace(
        "  stdout: {}\n",
        &format!("  otlp: {{ endpoint: \"{endpoint}\" }}\n"),
    );
    assert_ne!(config, example);
    let cluster = Postgres::init(s.path());
    // Attached first: the server, and each backend it forks per connection, start traced,
    // with the query probes' semaphores set.
    let sidecar = support::Sidecar::start(&s.write_yaml(&config), &[]).await;
    cluster.start();
    let queries = [
        "select 1",
        "create table t (x int)",
        "insert into t values (1), (2)",
        "select count(*) from t",
    ];
    let result = cluster.psql(&queries);
    // A failed query never reaches `query__done`: PostgreSQL longjmps out of it.
    let failed = cluster.psql(&["select 1/0", "select 2"]);
    cluster.stop();
    sidecar.stop().await;
    assert!(result.contains("INSERT 0 2"), "{result}");
    assert!(failed.contains("division by zero"), "{failed}");
    let by_text = |text: &str| {
        let found: Vec<_> = named(&s.receiver.spans(), "query")
            .into_iter()
            .filter(|q| q.str_attr("db.query.text") == Some(text))
            .cloned()
            .collect();
        let [query] = &found[..] else {
            panic!("one `{text}` query span: {found:#?}")
        };
        query.clone()
    };
    // Closed as unwound when the next query starts at the same place, which is a root again.
    let division = by_text("select 1/0");
    assert_eq!(division.str_attr("spanprobe.incomplete"), Some("unwound"));
    assert!(by_text("select 2").span.parent_span_id.is_empty());
    let spans = s.receiver.spans();
    let by_id = by_id(&spans);
    for text in queries {
        let found: Vec<_> = named(&spans, "query")
            .into_iter()
            .filter(|q| q.str_attr("db.query.text") == Some(text))
            .collect();
        let [query] = found[..] else {
            panic!("one `{text}` query span: {spans:#?}")
        };
        assert!(query.span.parent_span_id.is_empty());
        let children: Vec<_> = spans
            .iter()
            .filter(|span| {
                by_id
                    .get(&span.span.parent_span_id)
                    .is_some_and(|parent| parent.span.span_id == query.span.span_id)
            })
            .map(ReceivedSpan::name)
            .collect();
        assert_eq!(query.str_attr("db.system"), Some("postgresql"));
        assert!(children.contains(&"parse"), "{text}: {children:?}");
        assert!(children.contains(&"execute"), "{text}: {children:?}");
        // Utility statements (create table) are not planned.
        if text.starts_with("select") || text.starts_with("insert") {
            assert!(children.contains(&"plan"), "{text}: {children:?}");
        }
        for child in spans
            .iter()
            .filter(|span| span.span.parent_span_id == query.span.span_id)
        {
            assert!(child.span.start_time_unix_nano >= query.span.start_time_unix_nano);
            assert!(child.span.end_time_unix_nano <= query.span.end_time_unix_nano);
        }
    }
}
