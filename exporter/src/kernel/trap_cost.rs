//! What a single-stepped first instruction costs per call on this machine: `check` measures
//! it rather than quoting another machine's figure, since it varies tenfold between a VM and
//! bare metal.
//!
//! Two functions of this binary differ only in their first instruction: a `push`, which the
//! kernel emulates, and a `lea`, which it single-steps. Each is called in a loop under a bare
//! uprobe perf event (no BPF program: only the traps are measured); the difference per call is
//! the second trap's cost.

use std::{
    ffi::CString,
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::kernel::syscalls::{PerfEventAttr, perf_event_open};

/// Calls per measured loop: enough for a stable mean, well under a second when stepped.
const CALLS: u32 = 5_000;

/// Pushes and pops: its probed first instruction is emulated.
#[unsafe(naked)]
extern "C" fn spanprobe_trap_emulated() {
    core::arch::naked_asm!("push rbp", "pop rbp", "ret")
}

/// Loads an address: its probed first instruction is single-stepped.
#[unsafe(naked)]
extern "C" fn spanprobe_trap_stepped() {
    core::arch::naked_asm!("lea rax, [rsp + 8]", "ret")
}

/// The extra time per call a single-stepped first instruction costs here, measured now.
pub fn single_step_cost() -> io::Result<Duration> {
    let emulated = mean_probed_call(spanprobe_trap_emulated)?;
    let stepped = mean_probed_call(spanprobe_trap_stepped)?;
    Ok(stepped.saturating_sub(emulated))
}

/// The file and file offset of this process's code at `address`, from its memory map.
fn file_offset(address: u64) -> io::Result<(PathBuf, u64)> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    // `start-end perms offset dev inode path`
    for line in maps.lines() {
        let fields: Vec<_> = line.split_whitespace().collect();
        let [range, _, offset, _, _, path, ..] = fields[..] else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let hex = |text: &str| u64::from_str_radix(text, 16).map_err(io::Error::other);
        if (hex(start)?..hex(end)?).contains(&address) {
            return Ok((PathBuf::from(path), address - hex(start)? + hex(offset)?));
        }
    }
    Err(io::Error::other(format!(
        "{address:#x} is in no mapped file"
    )))
}

/// The mean time of one call of `function` with a uprobe on its first instruction: the best of
/// three loops, so that a preempted loop does not count. Fails unless the probe fired on every
/// call, so that what is timed is the trap.
fn mean_probed_call(function: extern "C" fn()) -> io::Result<Duration> {
    const LOOPS: u32 = 3;
    let (binary, offset) = file_offset(function as usize as u64)?;
    let probe = uprobe(&binary, offset)?;
    let best = (0..LOOPS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                std::hint::black_box(function)();
            }
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    let hits = hits(&probe)?;
    if hits != u64::from(LOOPS * CALLS) {
        return Err(io::Error::other(format!(
            "the uprobe fired {hits} times in {} calls",
            LOOPS * CALLS
        )));
    }
    Ok(best / CALLS)
}

/// How many times the uprobe perf event `probe` fired.
fn hits(probe: &OwnedFd) -> io::Result<u64> {
    use std::io::Read as _;
    let mut count = [0u8; 8];
    std::fs::File::from(probe.try_clone()?).read_exact(&mut count)?;
    Ok(u64::from_ne_bytes(count))
}

/// A uprobe perf event at `offset` of `binary` in this process, counting hits with no program
/// attached; removed when dropped. Needs CAP_PERFMON.
fn uprobe(binary: &Path, offset: u64) -> io::Result<OwnedFd> {
    let pmu: u32 = std::fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")?
        .trim()
        .parse()
        .map_err(io::Error::other)?;
    let path = CString::new(binary.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let attr = PerfEventAttr {
        kind: pmu,
        // uprobe_path and probe_offset, in the config1/config2 union slots.
        config1: path.as_ptr() as u64,
        config2: offset,
        ..PerfEventAttr::default()
    };
    // `path` outlives the call.
    perf_event_open(attr, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::elf::ProbedInstruction;

    /// Whether the two functions start as their names say, as the kernel classifies them.
    fn classified() -> (Option<ProbedInstruction>, Option<ProbedInstruction>) {
        let code = |function: extern "C" fn()| {
            // SAFETY: reading the first bytes of a function of this binary.
            let bytes = unsafe { std::slice::from_raw_parts(function as *const u8, 8) };
            crate::binary::elf::probed_instruction(bytes, function as usize as u64)
        };
        (code(spanprobe_trap_emulated), code(spanprobe_trap_stepped))
    }

    #[test]
    fn the_two_functions_are_emulated_and_stepped() {
        let (emulated, stepped) = classified();
        assert_eq!(emulated, Some(ProbedInstruction::Emulated));
        assert!(
            matches!(&stepped, Some(ProbedInstruction::SingleStepped(text)) if text.starts_with("lea")),
            "{stepped:?}"
        );
    }

    #[test]
    fn the_cost_is_measured_with_the_probes_firing() {
        // Root here (and in CI): the traps are real, and each loop checks that its probe fired
        // on every call. How large the cost is belongs to BENCHMARKS.md, not to a test.
        single_step_cost().expect("uprobes placed in this test binary fire");
    }
}
