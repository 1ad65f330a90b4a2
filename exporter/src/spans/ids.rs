//! Trace and span ids, derived from what identifies a call: its thread and entry time.
//!
//! The eBPF side carries no ids (fewer helper calls per probe); a call's span id comes from
//! its own entry time, its parent's from the parent's entry time, and the trace id from the
//! root call's. A parent's id is therefore known before the parent has ended. A per-run
//! random key keeps ids unpredictable and distinct across runs.

use opentelemetry::trace::{SpanId, TraceId};
use siphasher::sip128::{Hasher128 as _, SipHasher13};
use std::hash::Hasher as _;

/// Derives OpenTelemetry ids from (pid, call stack, entry time): the stack is a thread's (its
/// tid) or a goroutine's ([`spanprobe_common::CallEvent::stack_id`]).
#[derive(Debug, Clone)]
pub struct IdGenerator {
    key: [u8; 16],
}

impl IdGenerator {
    /// A generator with a fresh random key.
    pub fn random() -> Self {
        Self::with_key(rand::random())
    }

    pub const fn with_key(key: [u8; 16]) -> Self {
        Self { key }
    }

    /// The span id of the call that entered at `entry_ns` on stack `stack` of `pid`: for a
    /// handed-off parent. (The pipeline takes a call's own ids at once, from
    /// [`Self::span_ids`]; the tests check that against these.)
    pub fn span_id(&self, pid: u32, stack: u64, entry_ns: u64) -> SpanId {
        CallHash(self.hash(pid, stack, entry_ns)).span_id()
    }

    /// The trace id of the trace whose root call entered at `root_entry_ns` on `stack`.
    pub fn trace_id(&self, pid: u32, stack: u64, root_entry_ns: u64) -> TraceId {
        CallHash(self.hash(pid, stack, root_entry_ns)).trace_id()
    }

    /// A span's trace id, its own id and its parent's (`None` for a root), hashing each
    /// distinct entry time once: a root is its own trace's root, and a child's parent is
    /// often the root.
    pub fn span_ids(
        &self,
        pid: u32,
        stack: u64,
        root_entry_ns: u64,
        entry_ns: u64,
        parent_entry_ns: Option<u64>,
    ) -> (TraceId, SpanId, Option<SpanId>) {
        let own = CallHash(self.hash(pid, stack, entry_ns));
        let known = |ns: u64| {
            if ns == entry_ns {
                own
            } else {
                CallHash(self.hash(pid, stack, ns))
            }
        };
        let root = known(root_entry_ns);
        let parent = parent_entry_ns.map(|ns| if ns == root_entry_ns { root } else { known(ns) });
        (
            root.trace_id(),
            own.span_id(),
            parent.map(CallHash::span_id),
        )
    }

    fn hash(&self, pid: u32, stack: u64, ns: u64) -> siphasher::sip128::Hash128 {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write_u32(pid);
        hasher.write_u64(stack);
        hasher.write_u64(ns);
        hasher.finish128()
    }
}

/// The hash of one call: its span id, and the trace id of the trace it is the root of (a
/// root's span id is its trace id's low half, which OpenTelemetry allows).
#[derive(Clone, Copy)]
struct CallHash(siphasher::sip128::Hash128);

impl CallHash {
    fn span_id(self) -> SpanId {
        // An all-zero id means "invalid" in OpenTelemetry.
        SpanId::from(match self.0.h1 {
            0 => 1,
            id => id,
        })
    }

    fn trace_id(self) -> TraceId {
        TraceId::from(match self.0.as_u128() {
            0 => 1,
            id => id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_call_same_id() {
        let ids = IdGenerator::with_key([7; 16]);
        assert_eq!(ids.span_id(1, 2, 3), ids.span_id(1, 2, 3));
        assert_eq!(ids.trace_id(1, 2, 3), ids.trace_id(1, 2, 3));
    }

    #[test]
    fn any_difference_changes_the_id() {
        let ids = IdGenerator::with_key([7; 16]);
        let base = ids.span_id(1, 2, 3);
        assert_ne!(base, ids.span_id(9, 2, 3));
        assert_ne!(base, ids.span_id(1, 9, 3));
        assert_ne!(base, ids.span_id(1, 2, 9));
        assert_ne!(ids.trace_id(1, 2, 3), ids.trace_id(1, 2, 4));
        let other_run = IdGenerator::with_key([8; 16]);
        assert_ne!(base, other_run.span_id(1, 2, 3));
    }

    #[test]
    fn span_ids_agree_with_the_single_ids() {
        let ids = IdGenerator::with_key([7; 16]);
        for (root, entry, parent) in [(3, 3, None), (3, 5, Some(3)), (3, 9, Some(5))] {
            assert_eq!(
                ids.span_ids(1, 2, root, entry, parent),
                (
                    ids.trace_id(1, 2, root),
                    ids.span_id(1, 2, entry),
                    parent.map(|parent| ids.span_id(1, 2, parent))
                )
            );
        }
    }

    #[test]
    fn ids_are_valid() {
        let ids = IdGenerator::random();
        assert_ne!(ids.span_id(0, 0, 0), SpanId::INVALID);
        assert_ne!(ids.trace_id(0, 0, 0), TraceId::INVALID);
    }
}
