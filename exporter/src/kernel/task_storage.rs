//! Reading a task storage map (`BPF_MAP_TYPE_TASK_STORAGE`), which aya 0.16 does not type:
//! the kernel looks a thread's value up by a pidfd of the thread, and no map iteration lists
//! them, so the threads are found in /proc.

use std::{
    fs, io,
    mem::MaybeUninit,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use aya::{Pod, maps::MapData};

/// `BPF_MAP_LOOKUP_ELEM`, from `enum bpf_cmd` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// `union bpf_attr`'s member for element commands.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Every thread's value in `map`.
pub fn values<T: Pod>(map: &MapData) -> io::Result<Vec<T>> {
    let value_size = map.info().map_err(io::Error::other)?.value_size();
    if value_size as usize != size_of::<T>() {
        return Err(io::Error::other(format!(
            "task storage values are {value_size} bytes, not {}",
            size_of::<T>()
        )));
    }
    let map = map.fd().as_fd();
    let mut values = Vec::new();
    for tid in threads()? {
        let pidfd = match thread_pidfd(tid) {
            Ok(pidfd) => pidfd,
            // Exited since /proc listed it: nothing to read. Or, before Linux 6.9, not its
            // process's first thread, which only then gets a pidfd of its own.
            Err(error) if matches!(error.raw_os_error(), Some(libc::ESRCH | libc::EINVAL)) => {
                continue;
            }
            Err(error) => return Err(error),
        };
        values.extend(lookup::<T>(map, &pidfd)?);
    }
    Ok(values)
}

/// The ids of every thread on the system, as /proc lists them.
fn threads() -> io::Result<Vec<u32>> {
    let numbered = |dir: &str| -> io::Result<Vec<u32>> {
        Ok(fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect())
    };
    let mut tids = Vec::new();
    for pid in numbered("/proc")? {
        // Gone since listed: nothing to add.
        if let Ok(threads) = numbered(&format!("/proc/{pid}/task")) {
            tids.extend(threads);
        }
    }
    Ok(tids)
}

/// A pidfd of thread `tid`: `PIDFD_THREAD` (Linux 6.9+), or a plain pidfd, which earlier
/// kernels give a process's first thread only.
fn thread_pidfd(tid: u32) -> io::Result<OwnedFd> {
    let open = |flags: libc::c_uint| {
        // SAFETY: pidfd_open takes a pid and flags, and returns a new descriptor or -1.
        unsafe { libc::syscall(libc::SYS_pidfd_open, tid, flags) }
    };
    let mut fd = open(libc::PIDFD_THREAD);
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        fd = open(0);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the call just opened, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The value of the thread `pidfd` refers to, `None` when it has none.
fn lookup<T: Pod>(map: BorrowedFd<'_>, pidfd: &OwnedFd) -> io::Result<Option<T>> {
    let key: i32 = pidfd.as_raw_fd();
    let mut value = MaybeUninit::<T>::uninit();
    let attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: (&raw const key) as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `attr` points at a key and at room for one value of the map's value type.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_ELEM,
            &raw const attr,
            size_of::<ElemAttr>(),
        )
    };
    if result < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            _ => Err(error),
        };
    }
    // SAFETY: the kernel filled the value, of `T`'s size (checked in `values`), and any bytes
    // are a valid `Pod`.
    Ok(Some(unsafe { value.assume_init() }))
}
