//! Trace and span ids, derived from what identifies a call: its thread and entry time.
//!
//! The eBPF side carries no ids (fewer helper calls per probe); a call's span id comes from
//! its own entry time, its parent's from the parent's entry time, and the trace id from the
//! root call's. A parent's id is therefore known before the parent has ended. A per-run
//! random key keeps ids unpredictable and distinct across runs.

use opentelemetry::trace::{SpanId, TraceId};
use siphasher::sip128::{Hasher128 as _, SipHasher13};
use std::hash::Hasher as _;

/// Derives OpenTelemetry ids from (pid, tid, entry time).
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

    /// The span id of the call that entered at `entry_ns` on thread `tid` of `pid`.
    pub fn span_id(&self, pid: u32, tid: u32, entry_ns: u64) -> SpanId {
        let id = self.hash(0, pid, tid, entry_ns).h1;
        // An all-zero id means "invalid" in OpenTelemetry.
        SpanId::from(if id == 0 { 1 } else { id })
    }

    /// The trace id of the trace whose root call entered at `root_entry_ns`.
    pub fn trace_id(&self, pid: u32, tid: u32, root_entry_ns: u64) -> TraceId {
        let id = self.hash(1, pid, tid, root_entry_ns).as_u128();
        TraceId::from(if id == 0 { 1 } else { id })
    }

    fn hash(&self, domain: u8, pid: u32, tid: u32, ns: u64) -> siphasher::sip128::Hash128 {
        let mut hasher = SipHasher13::new_with_key(&self.key);
        hasher.write_u8(domain);
        hasher.write_u32(pid);
        hasher.write_u32(tid);
        hasher.write_u64(ns);
        hasher.finish128()
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
    fn ids_are_valid() {
        let ids = IdGenerator::random();
        assert_ne!(ids.span_id(0, 0, 0), SpanId::INVALID);
        assert_ne!(ids.trace_id(0, 0, 0), TraceId::INVALID);
    }
}
