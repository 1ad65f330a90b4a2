//! A caller's trace context as an argument: a W3C traceparent, and binary ids, joining the
//! caller's trace.

use crate::{
    checks::assert_all_exported,
    support::{
        context::{self, PARENT, PARENT_IS_REMOTE, TRACE, hex},
        scenario::Workdir,
        vm::Case,
    },
    traced::{functions_config, traced},
};

/// context.c's handle(traceparent, n) with a sampled W3C traceparent (its span joins that
/// trace as the child of the caller's span) and with an empty one (a new trace), then
/// handle_ids(trace id, span id, 100) with binary ids; lookup, which each calls, is their
/// child.
pub fn trace_context(dir: &Workdir) -> Case {
    let program = dir.c_program("context");
    let config = dir.write_named("context", &functions_config(&program, context::functions()));
    traced("trace context", &config, &program)
        .command(format!("{} 00-{TRACE}-{PARENT}-01 ''", program.display()))
        .case(|_, output, receiver| {
            output.assert_success();
            assert_eq!(output.stdout, "context 383\n");
            let spans = receiver.spans();
            let mut calls: Vec<_> = spans.iter().map(|s| (s.name(), s.int_attr("n"))).collect();
            calls.sort();
            assert_eq!(
                calls,
                [
                    ("handle", Some(1)),
                    ("handle", Some(2)),
                    ("handle_ids", Some(100)),
                    ("lookup", Some(1)),
                    ("lookup", Some(2)),
                    ("lookup", Some(100)),
                ]
            );
            let find = |name: &str, n: i64| {
                spans
                    .iter()
                    .find(|s| s.name() == name && s.int_attr("n") == Some(n))
                    .expect("listed above")
            };
            // Joined: the caller's trace, as the child of the caller's span, marked remote.
            let joined = find("handle", 1);
            assert_eq!(hex(&joined.span.trace_id), TRACE);
            assert_eq!(hex(&joined.span.parent_span_id), PARENT);
            assert_eq!(joined.span.flags & PARENT_IS_REMOTE, PARENT_IS_REMOTE);
            let by_ids = find("handle_ids", 100);
            assert_eq!(
                hex(&by_ids.span.trace_id),
                "101112131415161718191a1b1c1d1e1f"
            );
            assert_eq!(hex(&by_ids.span.parent_span_id), "a0a1a2a3a4a5a6a7");
            assert_eq!(by_ids.span.flags & PARENT_IS_REMOTE, PARENT_IS_REMOTE);
            // Empty: a new root, in a trace of its own.
            let fresh = find("handle", 2);
            assert!(fresh.span.parent_span_id.is_empty(), "{fresh:#?}");
            assert_ne!(fresh.span.trace_id, joined.span.trace_id);
            assert_ne!(fresh.span.trace_id, by_ids.span.trace_id);
            for (handler, n) in [(joined, 1), (fresh, 2), (by_ids, 100)] {
                let lookup = find("lookup", n);
                assert_eq!(lookup.span.parent_span_id, handler.span.span_id);
                assert_eq!(lookup.span.trace_id, handler.span.trace_id);
                assert_eq!(
                    lookup.span.flags & PARENT_IS_REMOTE,
                    0x100,
                    "a local parent"
                );
            }
            assert!(
                output.stderr.contains(" invalid_trace_context=1\n"),
                "{output}"
            );
            assert_all_exported(output, 6);
        })
}
