//! Stacks unwound from the windows entries send ahead of their calls (`unwind: dwarf`): each
//! window is unwound as it arrives, while its process still maps what the stack runs through,
//! and kept until its call's event comes to take it.

use std::collections::HashMap;

use spanprobe_common::{CallEvent, StackWindowHeader};

use crate::spans::unwind::{ProbedFile, StackWindow, Unwinders, Unwound};

/// Calls whose unwound stack waits for the call's event, at most: one per stack and depth is
/// kept, so this bounds only the threads of processes that exited mid-call.
const MAX_PENDING: usize = 65_536;

/// Unwinds stack windows and keeps each stack for its call.
#[derive(Debug, Default)]
pub struct StackWindows {
    unwinders: Unwinders,
    /// By the call's (pid, stack, depth): a call that sent nothing at its end (left out by its
    /// keep rules) is replaced by the next call at its place.
    pending: HashMap<(u32, u64, u32), (u64, Unwound)>,
}

impl StackWindows {
    /// Unwinds a window of `bytes` from `header`'s registers, at most `frames` addresses, and
    /// keeps the stack for its call; its function is in `probed`.
    pub fn arrived(
        &mut self,
        header: &StackWindowHeader,
        bytes: &[u8],
        frames: usize,
        probed: ProbedFile<'_>,
    ) {
        let bytes = with_real_returns(header, bytes);
        let window = StackWindow {
            ip: header.ip,
            sp: header.sp,
            bp: header.bp,
            bytes: &bytes,
        };
        let unwound = self.unwinders.unwind(header.pid, &window, frames, probed);
        if self.pending.len() >= MAX_PENDING {
            self.pending.clear();
        }
        self.pending.insert(
            (header.pid, header.stack_id, header.depth),
            (header.entry_ns, unwound),
        );
    }

    /// The stack of `event`'s call, if its window arrived.
    pub fn take(&mut self, event: &CallEvent) -> Option<Unwound> {
        let key = (event.pid, event.stack_id(), event.depth);
        match self.pending.remove(&key) {
            Some((entry_ns, unwound)) if entry_ns == event.entry_ns => Some(unwound),
            // Another call's, at the same place: the one this event's call sent was lost.
            Some(other) => {
                self.pending.insert(key, other);
                None
            }
            None => None,
        }
    }

    /// Forgets processes `pids`, which have exited.
    pub fn forget(&mut self, pids: &[u32]) {
        self.unwinders.forget(pids);
        self.pending.retain(|(pid, _, _), _| !pids.contains(pid));
    }
}

/// `bytes`, the stack from `header.sp`, with the return address of each outer probed call
/// back in its return slot, where the uretprobe trampoline's stands while the call runs: the
/// trampoline has no unwind table, so an unwinder would stop there.
fn with_real_returns(header: &StackWindowHeader, bytes: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let outer = &header.outer[..(header.outer_len as usize).min(header.outer.len())];
    for &[slot, address] in outer {
        // A USDT span's frame has no return slot; one entered before stacks were read has
        // no address kept.
        if address == u64::MAX || address == 0 {
            continue;
        }
        let Some(at) = slot
            .checked_sub(header.sp)
            .and_then(|at| usize::try_from(at).ok())
        else {
            continue;
        };
        if let Some(word) = at.checked_add(8).and_then(|end| bytes.get_mut(at..end)) {
            word.copy_from_slice(&address.to_ne_bytes());
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use spanprobe_common::{MAX_DEPTH, STACK_WINDOW_MARK};

    use super::*;

    fn header(outer: &[[u64; 2]]) -> StackWindowHeader {
        let mut header = StackWindowHeader {
            mark: STACK_WINDOW_MARK,
            pid: 1,
            stack_id: 2,
            entry_ns: 3,
            function_id: 0,
            len: 32,
            ip: 0,
            sp: 0x1000,
            bp: 0,
            outer_len: outer.len() as u32,
            depth: outer.len() as u32 + 1,
            outer: [[0; 2]; MAX_DEPTH],
        };
        header.outer[..outer.len()].copy_from_slice(outer);
        header
    }

    fn words(bytes: &[u8]) -> Vec<u64> {
        bytes
            .as_chunks::<8>()
            .0
            .iter()
            .map(|word| u64::from_ne_bytes(*word))
            .collect()
    }

    #[test]
    fn puts_real_return_addresses_back_in_their_slots() {
        let trampoline = 0x7fff_f000u64;
        let stack: Vec<u8> = [0xca11e5, 7, trampoline, trampoline]
            .iter()
            .flat_map(|word: &u64| word.to_ne_bytes())
            .collect();
        // The outer calls' slots, innermost first; one USDT frame without a slot, one slot
        // beyond the copy, one below the stack pointer.
        let outer = [
            [0x1010, 0xaaa],
            [0x1018, u64::MAX],
            [0x1018, 0xbbb],
            [0x1020, 0xccc],
            [0x0ff8, 0xddd],
        ];
        let fixed = with_real_returns(&header(&outer), &stack);
        assert_eq!(words(&fixed), [0xca11e5, 7, 0xaaa, 0xbbb]);
    }

    #[test]
    fn a_stack_is_taken_by_its_own_call_only() {
        let mut windows = StackWindows::default();
        let mut pending = header(&[]);
        pending.pid = u32::MAX - 1;
        let probed = ProbedFile {
            path: std::path::Path::new("/proc/self/exe"),
            file_offset: 0,
        };
        windows.arrived(&pending, &[], 8, probed);
        let event = CallEvent {
            pid: pending.pid,
            tid: 2,
            depth: 1,
            entry_ns: 4,
            ..Default::default()
        };
        assert!(windows.take(&event).is_none(), "another call's entry time");
        let event = CallEvent {
            entry_ns: 3,
            ..event
        };
        let unwound = windows.take(&event).expect("its window arrived");
        assert_eq!(unwound.addresses.first(), Some(&0));
        assert!(windows.take(&event).is_none(), "taken once");
    }
}
