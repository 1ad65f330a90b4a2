//! `BPF_MAP_TYPE_TASK_STORAGE`, which aya-ebpf does not wrap yet: a value attached to each
//! task (thread) by the kernel, found from the current task without a hash lookup and freed
//! with the task.
use core::ptr;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type},
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_delete, bpf_task_storage_get},
};

/// A BTF map definition, laid out as libbpf's `__uint`/`__type` macros lay one out: each
/// field's pointee type carries a parameter, read from BTF by the loader. Local storage maps
/// must be described by BTF, so the legacy `maps` section cannot hold one.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders the loader reads from BTF; nothing dereferences them.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
        }
    }

    fn as_ptr(&self) -> *mut core::ffi::c_void {
        ptr::from_ref(self).cast_mut().cast()
    }

    /// The current task's value, created zeroed if `create` and it has none.
    #[inline(always)]
    pub fn current(&self, create: bool) -> Option<*mut T> {
        let flags = if create {
            u64::from(BPF_LOCAL_STORAGE_GET_F_CREATE)
        } else {
            0
        };
        // SAFETY: the helper returns the running task, a trusted pointer; with a null initial
        // value, a created value is zeroed.
        let value = unsafe {
            bpf_task_storage_get(
                self.as_ptr(),
                bpf_get_current_task_btf().cast(),
                ptr::null_mut(),
                flags,
            )
        };
        let value = value.cast::<T>();
        (!value.is_null()).then_some(value)
    }

    /// Frees the current task's value, if it has one.
    #[inline(always)]
    pub fn remove_current(&self) {
        // SAFETY: as in `current`.
        let _ =
            unsafe { bpf_task_storage_delete(self.as_ptr(), bpf_get_current_task_btf().cast()) };
    }
}
