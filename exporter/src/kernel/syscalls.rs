//! The two raw system calls behind the attachments aya 0.16 does not make: `perf_event_open`
//! (a uprobe counted alone, a tracefs event inherited by a process tree) and
//! `bpf(BPF_LINK_CREATE)` (uprobe_multi links with reference counters, links to perf events).

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd},
};

/// `BPF_LINK_CREATE`, from `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_LINK_CREATE: libc::c_long = 28;
/// `PERF_FLAG_FD_CLOEXEC`, from include/uapi/linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// The first fields of the kernel's `perf_event_attr`, as far as `config2`: its version-1 size
/// (72 bytes), which every kernel accepts; the libc crate does not define the struct. The
/// flags bit-field is one word (all zero: enabled, counting).
#[repr(C)]
#[derive(Default)]
pub struct PerfEventAttr {
    pub kind: u32,
    /// Set by [`perf_event_open`].
    pub size: u32,
    pub config: u64,
    pub sample_period: u64,
    pub sample_type: u64,
    pub read_format: u64,
    pub flags: u64,
    pub wakeup_events: u32,
    pub bp_type: u32,
    pub config1: u64,
    pub config2: u64,
}

const _: () = assert!(size_of::<PerfEventAttr>() == 72);

/// Opens the perf event `attr` on task `pid` (0: this one), on any CPU, in no group.
pub fn perf_event_open(mut attr: PerfEventAttr, pid: libc::pid_t) -> io::Result<OwnedFd> {
    attr.size = size_of::<PerfEventAttr>() as u32;
    let (any_cpu, no_group) = (-1, -1);
    // SAFETY: perf_event_open(2) with a valid attr of the size it says; any pointer in it is
    // the caller's, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &raw const attr,
            pid,
            any_cpu,
            no_group,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    owned(fd)
}

/// `bpf(BPF_LINK_CREATE)` with `attr`, a `union bpf_attr` `link_create` member (the kernel
/// zero-fills what follows it).
///
/// # Safety
/// `attr` must be a valid `link_create` attribute for its attach type, and every pointer in it
/// must point at what the kernel reads there, alive for the call.
pub unsafe fn link_create<A>(attr: &A) -> io::Result<OwnedFd> {
    // SAFETY: as the caller promises.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            std::ptr::from_ref(attr),
            size_of::<A>() as u32,
        )
    };
    owned(fd)
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
