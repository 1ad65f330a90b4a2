//! `tests/programs/context.c` and the W3C trace context its handlers are called with: what the
//! trace-context tests and the kernel matrix trace it with, and check its spans against.

use serde_json::{Value, json};

/// The W3C trace context the tests pass: the caller's trace and span.
pub const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
pub const PARENT: &str = "b7ad6b7169203331";

/// OTLP `SpanFlags`: the parent's remoteness is known (bit 8), and it is remote (bit 9).
pub const PARENT_IS_REMOTE: u32 = 0x300;

/// `handle` with its traceparent in argument 0, `handle_ids` with binary ids, and their callee
/// `lookup`, each with its `n`.
pub fn functions() -> Value {
    json!([
        {
            "symbol": "handle",
            "trace_context": { "arg": 0, "format": "traceparent" },
            "args": [{ "index": 1, "name": "n", "type": "i32" }],
        },
        {
            "symbol": "handle_ids",
            "trace_context": { "format": "ids", "trace_id_arg": 0, "span_id_arg": 1 },
            "args": [{ "index": 2, "name": "n", "type": "i32" }],
        },
        { "symbol": "lookup", "args": [{ "index": 0, "name": "n", "type": "i32" }] },
    ])
}

/// `bytes` in lowercase hex, as W3C trace contexts write trace and span ids.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
