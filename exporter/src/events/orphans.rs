//! The calls the kernel side cannot end: those open on a goroutine's stack when its process
//! exits. The kernel ends a thread's calls when the thread exits, but a goroutine is no thread
//! (it runs on any), so its stack outlives the process in the map; userspace ends its calls
//! as the kernel would have, once it sees the process gone.

use spanprobe_common::{CallEnd, CallEvent, CallStack, Ending, MAX_DEPTH};

/// The events of the calls open on `stack`, innermost first, ended at `now_ns` as by their
/// process's exit: what the kernel's thread-exit program sends for a thread's stack. Calls
/// nested past `depth_limit` have no frame; those of a trace that was sampled out send nothing.
pub fn ended_calls(stack: &CallStack, depth_limit: u32, now_ns: u64) -> Vec<CallEvent> {
    let depth = stack.depth.min(depth_limit).min(MAX_DEPTH as u32);
    // Ended as the kernel ends a stack: the sampling state moves as each call ends.
    let mut stack = *stack;
    let ending = Ending::at(now_ns, CallEnd::ThreadExit);
    let mut events = Vec::new();
    for index in (0..depth).rev() {
        if stack.unsampled == 0 {
            // Which thread last ran the goroutine is not kept: 0.
            let frame = &stack.frames[index as usize];
            events.push(stack.call_event(frame, 0, index + 1, &ending));
        }
        stack.resample_after(index);
    }
    events
}

/// Whether process `pid` still runs: a zombie, exited but not yet reaped, does not.
pub fn process_runs(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ...`: the command may hold spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanprobe_common::{Frame, GOROUTINE_STACK, MEMORY_FAULT, StackKey};

    fn stack(depth: u32) -> CallStack {
        // SAFETY: all-zero is a valid CallStack (integers only), as the kernel's template.
        let mut stack: CallStack = unsafe { std::mem::zeroed() };
        stack.depth = depth;
        stack.key = StackKey {
            id: GOROUTINE_STACK | 0xc0_0000_01a0,
            pid: 42,
            _pad: 0,
        };
        stack.root_entry_ns = 100;
        stack.root_function_id = 3;
        for i in 0..depth.min(MAX_DEPTH as u32) {
            stack.frames[i as usize] = Frame {
                entry_ns: 100 + u64::from(i),
                parent_entry_ns: if i == 0 { 0 } else { 99 + u64::from(i) },
                function_id: 3 + i,
                faults: i,
                ..Frame::default()
            };
        }
        stack
    }

    #[test]
    fn open_calls_end_innermost_first_as_the_kernel_would_end_them() {
        let events = ended_calls(&stack(3), 32, 500);
        let ended: Vec<_> = events
            .iter()
            .map(|e| (e.function_id, e.depth, e.entry_ns, e.parent_entry_ns))
            .collect();
        assert_eq!(ended, [(5, 3, 102, 101), (4, 2, 101, 100), (3, 1, 100, 0)]);
        for event in &events {
            assert_eq!(event.pid, 42);
            assert_eq!(event.return_ns, 500);
            assert_eq!(event.root_entry_ns, 100);
            assert_eq!(event.end, CallEnd::ThreadExit as u16);
            assert_eq!(event.stack_id(), GOROUTINE_STACK | 0xc0_0000_01a0);
        }
        // Frame 1's argument 0 faulted at entry.
        assert_eq!(events[1].arg_lens[0], MEMORY_FAULT);
        assert_eq!(events[2].arg_lens[0], 0);
    }

    #[test]
    fn calls_past_the_limit_have_no_frame_and_dropped_subtrees_send_nothing() {
        assert_eq!(ended_calls(&stack(40), 2, 500).len(), 2);
        // The call in frame 1 was handed an unsampled context: it and its callees send
        // nothing, its caller does.
        let mut dropped = stack(3);
        dropped.unsampled = 2;
        let ids: Vec<_> = ended_calls(&dropped, 32, 500)
            .iter()
            .map(|e| e.function_id)
            .collect();
        assert_eq!(ids, [3]);
        let mut whole = stack(3);
        whole.unsampled = 1;
        assert!(ended_calls(&whole, 32, 500).is_empty());
    }

    #[test]
    fn tells_running_processes_from_gone_ones() {
        assert!(process_runs(std::process::id()));
        assert!(!process_runs(u32::MAX));
    }
}
