//! `tests/programs/pool.c`, a thread pool whose tasks are handed from request threads to
//! workers, and the config that ties them together: what the handoff tests and the kernel
//! matrix trace it with, and check its spans against.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use super::{
    receiver::ReceivedSpan,
    scenario::{by_id, named},
};

/// `pool.c`, built in `dir`.
pub fn program(dir: &Path) -> PathBuf {
    super::compile_c(
        &super::programs().join("pool.c"),
        dir,
        "pool",
        &["-pthread"],
    )
}

/// `pool.c`'s handlers and task functions.
pub fn functions() -> Value {
    json!([
        { "symbol": "handle_request", "args": [{ "index": 0, "name": "request", "type": "i32" }] },
        { "symbol": "handle_quiet", "sample_rate": 0 },
        { "symbol": "handle_traced", "trace_context": { "format": "traceparent", "arg": 0 } },
        {
            "symbol": "process_part",
            "args": [
                { "index": 0, "name": "request", "path": "->request" },
                { "index": 0, "name": "part", "path": "->part" },
            ],
        },
        { "symbol": "store_result" },
    ])
}

/// The handoff: the task pointer goes in at `pool_submit` and comes out at `run_task`, neither
/// of them traced; `adopt_as` is `parent` or `link`.
pub fn handoffs(adopt_as: &str) -> Value {
    json!([{
        "from": { "symbol": "pool_submit", "arg": 0 },
        "to": { "symbol": "run_task", "arg": 0 },
        "as": adopt_as,
    }])
}

/// The spans of `name` by their `request` attribute.
pub fn by_request<'a>(
    spans: &'a [ReceivedSpan],
    name: &str,
) -> HashMap<i64, Vec<&'a ReceivedSpan>> {
    let mut found: HashMap<i64, Vec<&ReceivedSpan>> = HashMap::new();
    for span in named(spans, name) {
        found
            .entry(span.int_attr("request").expect("a request"))
            .or_default()
            .push(span);
    }
    found
}

/// The six requests' tasks (two each, on a worker) are their children, in their traces; each
/// task's `store_result` is its child; the sampled-out request's tasks sent nothing.
pub fn assert_tasks_under_requests(spans: &[ReceivedSpan]) {
    let requests = by_request(spans, "handle_request");
    let parts = by_request(spans, "process_part");
    assert_eq!(requests.len(), 6, "{spans:#?}");
    for (request, handler) in &requests {
        let [handler] = handler[..] else {
            panic!("{handler:#?}")
        };
        let tasks = &parts[request];
        assert_eq!(tasks.len(), 2, "request {request}");
        for task in tasks {
            assert_eq!(task.span.trace_id, handler.span.trace_id, "{request}");
            assert_eq!(task.span.parent_span_id, handler.span.span_id, "{request}");
            // On a worker, not the producer: the handoff crossed threads.
            assert_ne!(task.int_attr("thread.id"), handler.int_attr("thread.id"));
        }
        let parts: HashSet<_> = tasks.iter().map(|t| t.int_attr("part")).collect();
        assert_eq!(parts, HashSet::from([Some(0), Some(1)]));
    }
    assert_results_under_parts(spans);
    assert!(!parts.contains_key(&900), "{:#?}", parts.get(&900));
    assert!(named(spans, "handle_quiet").is_empty());
}

/// Each `store_result` is the child of a `process_part`, in its trace.
pub fn assert_results_under_parts(spans: &[ReceivedSpan]) {
    let ids = by_id(spans);
    let results = named(spans, "store_result");
    assert_eq!(results.len(), named(spans, "process_part").len());
    for result in results {
        let part = ids[&result.span.parent_span_id];
        assert_eq!(part.name(), "process_part");
        assert_eq!(part.span.trace_id, result.span.trace_id);
    }
}
