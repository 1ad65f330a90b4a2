//! How a call's record is read back into span attributes: where each captured value is in the
//! event and its data, and what it decodes to. The capture plan decides where (so that both
//! sides agree); this is the half that reads.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Range,
    sync::{Arc, Mutex, PoisonError},
};

use opentelemetry::{Key, KeyValue};
use spanprobe_common::{CallEvent, MEMORY_FAULT, MemoryKind, NOT_READ, RETURN_FAULT};
use spanprobe_config::{Condition, Decoded, ValueType};

use crate::events::decode::otel_value;

/// `text`, kept until the process exits. For what is copied into every span of a probed
/// function (attribute keys, the function's name and file): copying a `'static` string
/// touches no reference count, where an `Arc`'s is written by the thread that builds each span
/// and again by the one that drops it after export, a cache line passed between cores twice
/// per attribute. Each distinct text is kept once (a glob's functions share their file and
/// keys), so what is kept is bounded by the config, however often plans are made.
pub fn for_the_run(text: &str) -> &'static str {
    static KEPT: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = kept.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into());
    kept.insert(leaked);
    leaked
}

/// How one captured argument is read back from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgPlan {
    /// Index into [`CallEvent::args`] and [`CallEvent::arg_lens`].
    pub slot: usize,
    pub key: Key,
    pub ty: ValueType,
    /// An enum's names by value, shown instead of the number when one matches.
    pub enumerators: Option<Arc<BTreeMap<i64, String>>>,
    /// Whether the value is at the end of a chain of pointers, which may fault: it then has
    /// no value, and `<key>.fault = true`.
    pub chained: bool,
    /// How the kernel read the memory behind it, if it did.
    pub memory: MemoryKind,
    /// For `str`/`bytes`: where the bytes are in the record's data.
    pub data: Range<usize>,
    /// For `str`: longest string kept; longer ones are cut and marked truncated.
    pub max_len: usize,
}

/// How the return value is read back from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnPlan {
    pub key: Key,
    pub ty: ValueType,
    /// As [`ArgPlan::enumerators`].
    pub enumerators: Option<Arc<BTreeMap<i64, String>>>,
    /// Whether the value is at the end of a chain of pointers from RAX, as
    /// [`ArgPlan::chained`].
    pub chained: bool,
    pub error_when: Option<Condition>,
}

/// How a function's stacks are captured, and how many frames they may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BacktracePlan {
    /// Walked along frame pointers by the kernel, into the call's data.
    Walked(WalkedStack),
    /// Unwound by userspace from the stack window its entry sent ahead of the call.
    Unwound { frames: usize },
}

impl BacktracePlan {
    /// The most frames a stack has.
    pub fn frames(&self) -> usize {
        match self {
            Self::Walked(walked) => walked.frames,
            Self::Unwound { frames } => *frames,
        }
    }
}

/// Where a stack walked by the kernel is in a call's data, and how many frames it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedStack {
    pub data: Range<usize>,
    pub frames: usize,
    /// Captured at a function's entry, where the area's first word is the caller's return
    /// address (at `[rsp]`); a USDT site's area has no such word worth reading.
    pub at_entry: bool,
}

impl WalkedStack {
    /// The captured return addresses, innermost first: the function itself, its caller, then
    /// the rest of the walk, with the uretprobe trampoline's address replaced by the real
    /// return addresses of the outer probed calls.
    pub fn addresses(&self, event: &CallEvent, data: &[u8]) -> Vec<u64> {
        let Some(area) = data.get(self.data.clone()) else {
            return Vec::new();
        };
        let words: Vec<u64> = area
            .as_chunks::<8>()
            .0
            .iter()
            .map(|b| u64::from_ne_bytes(*b))
            .collect();
        let walk = &words[..(event.stack_len as usize).min(self.frames + 1)];
        let mut addresses = match walk {
            [] => return Vec::new(),
            [_, rest @ ..] if !self.at_entry => rest.to_vec(),
            [caller] => vec![*caller],
            [caller, function, rest @ ..] => {
                let mut addresses = Vec::with_capacity(walk.len());
                addresses.push(*function);
                // Kernels that see the probe is at a function's entry add the caller
                // themselves.
                if rest.first() != Some(caller) {
                    addresses.push(*caller);
                }
                addresses.extend_from_slice(rest);
                addresses
            }
        };
        // [trampoline, return address of the innermost outer call, ...] after the walk's room.
        let outer_calls = (event.depth as usize)
            .saturating_sub(1)
            .min(spanprobe_common::MAX_DEPTH);
        if let [trampoline, returns @ ..] = &words[self.frames + 1..]
            && outer_calls > 0
        {
            // USDT spans' frames have no return address (all ones): no trampoline stands for
            // them.
            let mut real = returns[..outer_calls.min(returns.len())]
                .iter()
                .filter(|&&address| address != u64::MAX);
            for address in addresses.iter_mut().skip(1) {
                if *address == *trampoline
                    && let Some(real) = real.next()
                {
                    *address = *real;
                }
            }
        }
        addresses
    }
}

impl ArgPlan {
    /// The bytes the kernel read behind the register (a string without its NUL), or `None`
    /// when a read faulted (the memory's, or one along its chain); empty for register types.
    fn memory<'a>(&self, event: &CallEvent, data: &'a [u8]) -> Option<&'a [u8]> {
        let captured = event
            .arg_lens
            .get(self.slot)
            .copied()
            .unwrap_or(MEMORY_FAULT);
        // Set by a memory read that failed, or by a chain of pointers that did.
        if captured & (MEMORY_FAULT | NOT_READ) != 0 {
            return None;
        }
        if self.memory == MemoryKind::None {
            return Some(&[]);
        }
        let bytes = data.get(self.data.clone())?;
        // The string helper's count includes the NUL.
        let len = match self.memory {
            MemoryKind::Str => usize::from(captured).saturating_sub(1),
            _ => usize::from(captured),
        };
        Some(&bytes[..len.min(bytes.len())])
    }

    /// The attributes of this argument in `event`, whose captured memory is `data`.
    pub fn attributes(&self, event: &CallEvent, data: &[u8], out: &mut Vec<KeyValue>) {
        let Some(&raw) = event.args.get(self.slot) else {
            return;
        };
        // Memory to be read at return, of a call that failed or did not return: no value.
        if event
            .arg_lens
            .get(self.slot)
            .is_some_and(|captured| captured & NOT_READ != 0)
        {
            return;
        }
        let memory = self.memory(event, data);
        if self.chained && memory.is_none() {
            out.push(KeyValue::new(Key::new(format!("{}.fault", self.key)), true));
            return;
        }
        let decoded = named(
            self.ty.decode(raw, memory, self.max_len),
            self.enumerators.as_deref(),
        );
        let (value, truncated) = otel_value(decoded);
        if truncated {
            out.push(KeyValue::new(
                Key::new(format!("{}.truncated", self.key)),
                true,
            ));
        }
        out.push(KeyValue::new(self.key.clone(), value));
    }
}

impl ReturnPlan {
    /// Adds the return value of `event` to `out`, or `<key>.fault = true` when its chain of
    /// pointers faulted; the error its `error_when` finds, if any.
    pub fn attributes(&self, event: &CallEvent, out: &mut Vec<KeyValue>) -> Option<String> {
        if self.chained && event.flags & RETURN_FAULT != 0 {
            out.push(KeyValue::new(Key::new(format!("{}.fault", self.key)), true));
            return None;
        }
        let error = self
            .error_when
            .filter(|condition| condition.holds(self.ty.extend(event.ret)))
            .map(|condition| {
                format!(
                    "{} = {} (error_when {condition})",
                    self.key,
                    self.ty.extend(event.ret)
                )
            });
        let decoded = named(
            self.ty.decode(event.ret, None, 0),
            self.enumerators.as_deref(),
        );
        out.push(KeyValue::new(self.key.clone(), otel_value(decoded).0));
        error
    }
}

/// `decoded`, an enum's number shown by its enumerator's name when `enumerators` has it.
fn named(decoded: Decoded, enumerators: Option<&BTreeMap<i64, String>>) -> Decoded {
    match (decoded, enumerators) {
        (Decoded::Int(value), Some(names)) => names
            .get(&value)
            .map_or(Decoded::Int(value), |name| Decoded::Text(name.clone())),
        (decoded, _) => decoded,
    }
}
