//! `tests/programs/usdt.c`'s USDT probes as spans: what the USDT tests and the kernel matrix
//! trace it with.

use serde_json::{Value, json};

/// The `usdt` entries tracing all of usdt.c's probes: its request and step pairs, `mark`, and
/// `guarded`, behind a semaphore of its own.
pub fn probes() -> Value {
    json!([
        { "probe": "app:request__start", "until": "app:request__done", "span_name": "request",
          "args": [
              { "index": 0, "name": "id" },
              { "index": 1, "name": "name", "type": "str" },
              { "index": 2, "name": "slot" },
          ],
          // Read at whichever site ends the request: a register, or the constant 2.
          "until_args": [{ "index": 0, "name": "done_id" }] },
        { "probe": "app:step__start", "until": "app:step__done", "span_name": "step",
          "args": [{ "index": 0, "name": "i" }],
          "until_args": [{ "index": 0, "name": "result" }] },
        { "probe": "app:mark", "args": [{ "index": 0, "name": "seven" }] },
        { "probe": "app:guarded", "args": [{ "index": 0, "name": "id" }] },
    ])
}
