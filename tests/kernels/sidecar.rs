//! A sidecar: `run` without a command, attached to a process already running, ended by
//! SIGINT.

use std::time::Duration;

use crate::{
    chain::{Chain, chain_functions, chains},
    checks::{assert_all_exported, printed_pid},
    support::{
        scenario::Workdir,
        vm::{self, Case, Script},
    },
    traced::{SCENARIO_LIMIT, functions_config},
};

/// `wait_for FILE TEXT PID`: waits until FILE has TEXT, while PID runs, for 30 s at least; a
/// shell function both scenarios' scripts start with.
const WAIT_FOR: &str = r#"wait_for() {
  tries=0
  until grep -qs "$2" "$1"; do
    if ! kill -0 "$3" 2>/dev/null || [ $tries -ge 300 ]; then
      echo "no '$2' in $1"; cat "$1" >&2; return 1
    fi
    tries=$((tries + 1)); sleep 0.1
  done
}
"#;

/// A sidecar: the waiter starts first; `spanprobe run` without a command (every process) in
/// the background; once its log says it attached, the waiter is woken to make its calls,
/// then spanprobe gets SIGINT and exits 0 with every span exported.
pub fn sidecar(dir: &Workdir) -> Case {
    let waiter = dir.c_program("waiter");
    let config = dir.write_named("sidecar", &functions_config(&waiter, chain_functions()));
    Case::new(
        move |receiver| {
            let text = format!(
                r#"out=$(mktemp -d)
{WAIT_FOR}{waiter} >$out/waiter &
waiter=$!
wait_for $out/waiter ready $waiter || exit 1
OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} "$SPANPROBE" run --config {config} 2>$out/spanprobe &
tracer=$!
wait_for $out/spanprobe 'attached with' $tracer || exit 1
kill -USR1 $waiter
wait $waiter
echo "waiter exited $?"
kill -INT $tracer
wait $tracer
echo "spanprobe exited $?"
cat $out/waiter
cat $out/spanprobe >&2
"#,
                waiter = waiter.display(),
                endpoint = vm::grpc_endpoint(receiver),
                config = config.display(),
            );
            Script::new("sidecar", text)
                .file(&config)
                .file(&waiter)
                .time_limit(SCENARIO_LIMIT + Duration::from_secs(30))
        },
        |_, output, receiver| {
            output.assert_success();
            let pid = printed_pid(output, "waiter");
            assert_eq!(
                output.stdout,
                format!(
                    "waiter exited 0\nspanprobe exited 0\nwaiter[{pid}] ready 6\nwaiter done 22\n"
                )
            );
            // Only the calls made after spanprobe attached, in the process it found running.
            assert_eq!(
                chains(&receiver.spans()),
                [Chain::of(pid, pid, 3), Chain::of(pid, pid, 4)]
            );
            assert_all_exported(output, 6);
        },
    )
}

/// An `executable:` target no process runs yet: spanprobe waits (its programs built for any
/// function), hears through the exec program of the waiter as it starts, and probes its file;
/// then the waiter makes its calls. outer(1), made as it starts, is traced when the probes
/// beat it there.
pub fn started_later(dir: &Workdir) -> Case {
    let waiter = dir.c_program("waiter");
    let mut config = functions_config(&waiter, chain_functions());
    let target = &mut config["probes"][0];
    target["executable"] = target["binary"].take();
    if let Some(target) = target.as_object_mut() {
        target.remove("binary");
    }
    let config = dir.write_named("started_later", &config);
    Case::new(
        move |receiver| {
            let text = format!(
                r#"out=$(mktemp -d)
{WAIT_FOR}OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} "$SPANPROBE" run --config {config} 2>$out/spanprobe &
tracer=$!
wait_for $out/spanprobe 'attached with' $tracer || exit 1
{waiter} >$out/waiter &
waiter=$!
wait_for $out/spanprobe 'probing a file a process started running' $tracer || exit 1
wait_for $out/waiter ready $waiter || exit 1
kill -USR1 $waiter
wait $waiter
echo "waiter exited $?"
kill -INT $tracer
wait $tracer
echo "spanprobe exited $?"
cat $out/waiter
cat $out/spanprobe >&2
"#,
                waiter = waiter.display(),
                endpoint = vm::grpc_endpoint(receiver),
                config = config.display(),
            );
            Script::new("a file started later", text)
                .file(&config)
                .file(&waiter)
                .time_limit(SCENARIO_LIMIT + Duration::from_secs(30))
        },
        |_, output, receiver| {
            output.assert_success();
            let pid = printed_pid(output, "waiter");
            assert_eq!(
                output.stdout,
                format!(
                    "waiter exited 0\nspanprobe exited 0\nwaiter[{pid}] ready 6\nwaiter done 22\n"
                )
            );
            let chains = chains(&receiver.spans());
            let after = [Chain::of(pid, pid, 3), Chain::of(pid, pid, 4)];
            assert!(
                chains == after || chains == [&[Chain::of(pid, pid, 1)], &after[..]].concat(),
                "{chains:?}"
            );
        },
    )
}

/// A `pid:` target followed through forks (the fork program, and the trees map every probe
/// checks): forker starts first; spanprobe attaches to its pid (given by `${FORKER_PID}`),
/// then forker forks a child, which forks a grandchild, each calling work() once.
pub fn pid_tree(dir: &Workdir) -> Case {
    let forker = dir.c_program("forker");
    let functions = serde_json::json!([{
        "symbol": "work",
        "args": [{ "index": 0, "name": "generation", "type": "i64" }],
    }]);
    let mut config = functions_config(&forker, functions);
    config["probes"][0]["pid"] = serde_json::json!("${FORKER_PID}");
    let config = dir.write_named("pid_tree", &config);
    Case::new(
        move |receiver| {
            let text = format!(
                r#"out=$(mktemp -d)
{WAIT_FOR}{forker} >$out/forker &
forker=$!
wait_for $out/forker ready $forker || exit 1
FORKER_PID=$forker OTEL_EXPORTER_OTLP_ENDPOINT={endpoint} "$SPANPROBE" run --config {config} \
  2>$out/spanprobe &
tracer=$!
wait_for $out/spanprobe 'attached with' $tracer || exit 1
kill -USR1 $forker
wait $forker
echo "forker exited $?"
kill -INT $tracer
wait $tracer
echo "spanprobe exited $?"
cat $out/forker
cat $out/spanprobe >&2
"#,
                forker = forker.display(),
                endpoint = vm::grpc_endpoint(receiver),
                config = config.display(),
            );
            Script::new("pid tree", text)
                .file(&config)
                .file(&forker)
                .time_limit(SCENARIO_LIMIT + Duration::from_secs(30))
        },
        |_, output, receiver| {
            output.assert_success();
            let pid = printed_pid(output, "forker");
            assert_eq!(
                output.stdout,
                format!("forker exited 0\nspanprobe exited 0\nforker[{pid}] ready\nforker done\n")
            );
            let mut generations: Vec<_> = receiver
                .spans()
                .iter()
                .map(|span| span.int_attr("generation"))
                .collect();
            generations.sort();
            assert_eq!(generations, [Some(1), Some(2), Some(3)]);
            assert_all_exported(output, 3);
        },
    )
}
