//! uprobe_multi links whose probes carry reference counters: the kernel increments a USDT
//! probe's semaphore in every process that maps the binary (those running and those started
//! later) while the link holds the probe, so that code guarded by the semaphore fires it.
//! aya 0.16 creates uprobe_multi links without reference counters, so these are created here
//! with the `bpf(BPF_LINK_CREATE)` call it would make, plus the counters' offsets.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, OwnedFd},
    os::unix::ffi::OsStrExt as _,
    path::Path,
};

use crate::kernel::syscalls::link_create;

/// `BPF_TRACE_UPROBE_MULTI`, from `enum bpf_attach_type`.
const BPF_TRACE_UPROBE_MULTI: u32 = 48;
/// `BPF_F_UPROBE_MULTI_RETURN`: the link's probes are uretprobes.
const BPF_F_UPROBE_MULTI_RETURN: u32 = 1;

/// `union bpf_attr`'s `link_create` member with its `uprobe_multi` variant (Linux 6.6+); the
/// kernel zero-fills what follows.
#[repr(C)]
#[derive(Default)]
struct LinkCreateUprobeMulti {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    path: u64,
    offsets: u64,
    ref_ctr_offsets: u64,
    cookies: u64,
    cnt: u32,
    multi_flags: u32,
    pid: u32,
    _pad: u32,
}

/// One probe of a link: where it goes, its cookie, and its reference counter's file offset
/// (0 for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedProbe {
    pub offset: u64,
    pub cookie: u64,
    pub ref_ctr_offset: u64,
}

/// Attaches `program` (loaded for `uprobe.multi`) at `probes` of `binary`, as uretprobes when
/// `retprobe`, in every process (a `pid:` target's tree is kept by the program); closing the
/// returned descriptor detaches them all.
pub fn attach(
    program: BorrowedFd<'_>,
    binary: &Path,
    probes: &[CountedProbe],
    retprobe: bool,
) -> io::Result<OwnedFd> {
    let path = CString::new(binary.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    let offsets: Vec<u64> = probes.iter().map(|p| p.offset).collect();
    let cookies: Vec<u64> = probes.iter().map(|p| p.cookie).collect();
    let ref_ctr_offsets: Vec<u64> = probes.iter().map(|p| p.ref_ctr_offset).collect();
    let attr = LinkCreateUprobeMulti {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: BPF_TRACE_UPROBE_MULTI,
        path: path.as_ptr() as u64,
        offsets: offsets.as_ptr() as u64,
        ref_ctr_offsets: ref_ctr_offsets.as_ptr() as u64,
        cookies: cookies.as_ptr() as u64,
        cnt: u32::try_from(probes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many probes"))?,
        multi_flags: if retprobe {
            BPF_F_UPROBE_MULTI_RETURN
        } else {
            0
        },
        ..LinkCreateUprobeMulti::default()
    };
    // SAFETY: `attr` is a valid `link_create` attribute of the uprobe_multi type, and every
    // pointer in it (path, offsets, cookies, counters: `cnt` each) outlives the call.
    unsafe { link_create(&attr) }
}
