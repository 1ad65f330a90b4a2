//! Completed calls as the kernel sends them: the ring buffer ([`reader`]), the records
//! ([`decode`], read back into attributes by [`readback`]) and their clock ([`ktime`]); and the calls userspace ends for it ([`orphans`]).

pub mod decode;
pub mod ktime;
pub mod orphans;
pub mod readback;
pub mod reader;
pub mod ring;
