//! Handoffs: a span open where a key (a task, a request) is handed in is the parent, or a link,
//! of the spans opened where the key comes out, on another thread. Checked id for id on a
//! thread pool of our own (with a sampled-out request, a request that joined its caller's
//! trace, and a task handed in without `from`), as a link, on libuv's pool and its event
//! loop's callbacks (the same thread, later), and for goroutines, which need no config.

mod support;

use std::collections::HashSet;

use serde_json::{Value, json};
use support::{
    context::{PARENT, TRACE, hex},
    pool::{self, assert_results_under_parts, assert_tasks_under_requests, by_request},
    receiver::ReceivedSpan,
    scenario::{Scenario, assert_stderr_has, named},
    spawn,
};

fn pool_config(s: &Scenario, program: &std::path::Path, adopt_as: &str) -> Value {
    let mut config = s.config(program, pool::functions());
    config["probes"][0]["handoffs"] = pool::handoffs(adopt_as);
    config
}

async fn run_pool(adopt_as: &str) -> (std::process::Output, Vec<ReceivedSpan>) {
    let s = Scenario::start().await;
    let program = pool::program(s.path());
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let config = pool_config(&s, &program, adopt_as);
    let command = [program.to_str().unwrap(), traceparent.as_str()];
    s.trace(&config, &command).exits(0).await
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_by_a_pool_are_children_of_the_request_that_submitted_them() {
    support::needs_root!();
    let (output, spans) = run_pool("parent").await;
    // The six requests' tasks, and none of the sampled-out request's.
    assert_tasks_under_requests(&spans);
    let parts = by_request(&spans, "process_part");
    // A request that joined its caller's trace hands its tasks that trace.
    let [traced] = named(&spans, "handle_traced")[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(hex(&traced.span.trace_id), TRACE);
    assert_eq!(hex(&traced.span.parent_span_id), PARENT);
    for task in &parts[&800] {
        assert_eq!(hex(&task.span.trace_id), TRACE);
        assert_eq!(task.span.parent_span_id, traced.span.span_id);
    }
    // A task handed in without `pool_submit`: no parent, a trace of its own, counted.
    let [orphan] = parts[&700][..] else {
        panic!("{:#?}", parts[&700])
    };
    assert!(orphan.span.parent_span_id.is_empty());
    assert!(
        spans
            .iter()
            .filter(|s| s.span.span_id != orphan.span.span_id && s.name() != "store_result")
            .all(|s| s.span.trace_id != orphan.span.trace_id)
    );
    // Six requests, the quiet and the traced one: two tasks each, all taken.
    assert_stderr_has(&output, "made=16 taken=16 missing=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_usdt_probe_hands_off_and_a_request_id_is_a_key_taken_again_with_repeat() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = pool::program(s.path());
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let command = [program.to_str().unwrap(), traceparent.as_str()];
    // The task pointer, at the USDT probe in pool_submit.
    let mut config = pool_config(&s, &program, "parent");
    config["probes"][0]["handoffs"] = json!([{
        "from": { "probe": "pool:submit", "arg": 0 },
        "to": { "symbol": "run_task", "arg": 0 },
    }]);
    let (output, spans) = s.trace(&config, &command).exits(0).await;
    assert_tasks_under_requests(&spans);
    assert_stderr_has(&output, "made=16 taken=16 missing=1");
    // The request id, an `int` (the probe's note says 4 bytes; the task's member is read
    // through its pointer): both tasks of a request take the same key, so it stays.
    let first_run = spans.len();
    config["probes"][0]["handoffs"] = json!([{
        "from": { "probe": "pool:submit", "arg": 1 },
        "to": { "symbol": "run_task", "arg": 0, "path": "->request" },
        "repeat": true,
    }]);
    let (output, spans) = s.trace(&config, &command).exits(0).await;
    assert_tasks_under_requests(&spans[first_run..]);
    assert_stderr_has(&output, "made=16 taken=16 missing=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn as_link_a_task_starts_its_own_trace_linked_to_its_request() {
    support::needs_root!();
    let (_, spans) = run_pool("link").await;
    let requests = by_request(&spans, "handle_request");
    let parts = by_request(&spans, "process_part");
    let mut traces = HashSet::new();
    for (request, handler) in &requests {
        let [handler] = handler[..] else {
            panic!("{handler:#?}")
        };
        for task in &parts[request] {
            assert!(task.span.parent_span_id.is_empty(), "a root");
            assert_ne!(task.span.trace_id, handler.span.trace_id);
            assert!(traces.insert(task.span.trace_id.clone()), "a trace each");
            let [link] = &task.span.links[..] else {
                panic!("{:#?}", task.span.links)
            };
            assert_eq!(link.trace_id, handler.span.trace_id, "{request}");
            assert_eq!(link.span_id, handler.span.span_id, "{request}");
        }
    }
    assert_results_under_parts(&spans);
    for task in &parts[&800] {
        assert_eq!(hex(&task.span.links[0].trace_id), TRACE);
    }
    assert!(parts[&700][0].span.links.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn libuv_work_and_its_callbacks_join_the_trace_of_the_call_that_queued_them() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = support::compile_c(
        &support::programs().join("uvwork.c"),
        s.path(),
        "uvwork",
        &["-luv"],
    );
    let mut config = s.config(
        &program,
        json!([
            { "symbol": "handle", "args": [{ "index": 1, "name": "request", "type": "i32" }] },
            { "symbol": "crunch", "args": [{ "index": 0, "name": "request", "type": "i32" }] },
        ]),
    );
    // The `uv_work_t *` goes in at libuv's `uv_queue_work` and comes out as the argument of
    // the program's callback, on one of libuv's pool threads.
    config["probes"][0]["handoffs"] = json!([{
        "from": { "binary": "libuv.so.1", "symbol": "uv_queue_work", "arg": 1 },
        "to": { "symbol": "work", "arg": 0 },
    }]);
    let (output, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    assert!(support::stdout(&output).contains("uvwork 36"));
    let handlers = by_request(&spans, "handle");
    let work = by_request(&spans, "crunch");
    assert_eq!(handlers.len(), 3, "{spans:#?}");
    for (request, handler) in handlers {
        let [handler] = handler[..] else {
            panic!("{handler:#?}")
        };
        assert_eq!(work[&request].len(), 2);
        for crunch in &work[&request] {
            assert_eq!(crunch.span.trace_id, handler.span.trace_id);
            assert_eq!(crunch.span.parent_span_id, handler.span.span_id);
            assert_ne!(crunch.int_attr("thread.id"), handler.int_attr("thread.id"));
        }
    }
    assert_stderr_has(&output, "made=6 taken=6 missing=0");

    // An event loop's callback, run later on the same thread: the same handoff shape.
    let mut config = s.config(
        &program,
        json!([
            { "symbol": "handle", "args": [{ "index": 1, "name": "request", "type": "i32" }] },
            { "symbol": "settle", "args": [{ "index": 0, "name": "request", "type": "i32" }] },
        ]),
    );
    config["probes"][0]["handoffs"] = json!([{
        "from": { "binary": "libuv.so.1", "symbol": "uv_queue_work", "arg": 1 },
        "to": { "symbol": "done", "arg": 0 },
    }]);
    let (output, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    assert!(support::stdout(&output).contains("uvwork 36"));
    let first_run = 9;
    let spans = &spans[first_run..];
    let handlers = by_request(spans, "handle");
    let settled = by_request(spans, "settle");
    assert_eq!(handlers.len(), 3, "{spans:#?}");
    for (request, handler) in handlers {
        let [handler] = handler[..] else {
            panic!("{handler:#?}")
        };
        assert_eq!(settled[&request].len(), 2);
        for settle in &settled[&request] {
            assert_eq!(settle.span.trace_id, handler.span.trace_id);
            assert_eq!(settle.span.parent_span_id, handler.span.span_id);
            assert_eq!(settle.int_attr("thread.id"), handler.int_attr("thread.id"));
            // Later: the handler had returned.
            assert!(settle.span.start_time_unix_nano > handler.span.end_time_unix_nano);
        }
    }
}

#[tokio::test]
async fn bad_handoffs_are_refused_with_where_and_why() {
    let s = Scenario::start().await;
    let program = pool::program(s.path());
    let with = |handoffs: Value| {
        let mut config = pool_config(&s, &program, "parent");
        config["probes"][0]["handoffs"] = handoffs;
        config
    };
    // A function that is not there.
    let error = s
        .check(
            &with(json!([{
                "from": { "symbol": "pool_submit" },
                "to": { "symbol": "run_tasks" },
            }])),
            2,
        )
        .await;
    assert!(
        error.contains("probes[0].handoffs[0].to.symbol") && error.contains("`run_tasks`"),
        "{error}"
    );
    // A key reached through members is typed by DWARF: a number or a pointer...
    let shown = s
        .check(
            &with(json!([{
                "from": { "symbol": "pool_submit", "arg": 0, "path": "->next" },
                "to": { "symbol": "run_task", "arg": 0, "path": "->request" },
            }])),
            0,
        )
        .await;
    assert!(
        shown.contains("under the key in arg0->request (i32)"),
        "{shown}"
    );
    // ...not a string, which would be read from memory.
    let error = s
        .check(
            &with(json!([{
                "from": { "symbol": "pool_submit", "arg": 0, "path": "->label" },
                "to": { "symbol": "run_task", "arg": 0 },
            }])),
            2,
        )
        .await;
    assert!(
        error.contains("probes[0].handoffs[0].from")
            && error.contains("`pool_submit`: the handoff key is a `str`"),
        "{error}"
    );
    // One function, two ends.
    let error = s
        .check(
            &with(json!([
                { "from": { "symbol": "pool_submit" }, "to": { "symbol": "run_task" } },
                { "from": { "symbol": "pool_submit" }, "to": { "symbol": "enqueue" } },
            ])),
            2,
        )
        .await;
    assert!(
        error.contains("probes[0].handoffs[1].from.symbol")
            && error.contains("is already the `from` of handoffs[0]"),
        "{error}"
    );
    // A binary that is not there.
    let error = s
        .check(
            &with(json!([{
                "from": { "binary": "libnothere.so.9", "symbol": "submit" },
                "to": { "symbol": "run_task" },
            }])),
            2,
        )
        .await;
    assert!(
        error.contains("probes[0].handoffs[0].from.binary") && error.contains("libnothere.so.9"),
        "{error}"
    );
    // A `to` at a USDT probe the target does not trace: nothing would end the adoption.
    let error = s
        .check(
            &with(json!([{
                "from": { "symbol": "pool_submit" },
                "to": { "probe": "pool:submit" },
            }])),
            2,
        )
        .await;
    assert!(
        error.contains("probes[0].handoffs[0].to")
            && error.contains("`pool:submit` is a USDT probe the target does not trace"),
        "{error}"
    );
    // Neither a function nor a probe, or both.
    let error = s
        .check(
            &with(json!([{
                "from": { "symbol": "pool_submit", "probe": "pool:submit" },
                "to": { "arg": 0 },
            }])),
            2,
        )
        .await;
    assert!(
        error.contains("probes[0].handoffs[0].from: give one of `symbol` (a function) or `probe`")
            && error.contains("probes[0].handoffs[0].to: give one of"),
        "{error}"
    );
    // Unknown keys are refused, as everywhere in the config.
    let error = s
        .check(
            &with(json!([{
                "from": { "symbol": "pool_submit", "argument": 0 },
                "to": { "symbol": "run_task" },
            }])),
            2,
        )
        .await;
    assert!(error.contains("argument"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn goroutines_join_the_trace_of_the_span_that_started_them() {
    support::needs_root!();
    let s = Scenario::start().await;
    let program = support::go_build(s.path(), "spawn", "spawn");
    let config = s.config(&program, spawn::functions());
    let (output, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    assert!(support::stdout(&output).contains("spawn done"));
    spawn::assert_goroutine_tree(&spans);

    // Turned off, every goroutine's calls are traces of their own.
    let mut config = s.config(&program, spawn::functions());
    config["probes"][0]["follow_goroutines"] = json!(false);
    let (_, spans) = s
        .trace(&config, &[program.to_str().unwrap()])
        .exits(0)
        .await;
    assert_eq!(spans.len(), 3 * 5 + 1 + 16, "both runs' spans");
    let second: Vec<_> = spans[16..].to_vec();
    assert!(
        second.iter().all(|s| s.span.parent_span_id.is_empty()),
        "{second:#?}"
    );
}
