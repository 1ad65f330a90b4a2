//! Completed calls as the kernel sends them: the ring buffer ([`reader`]), the records
//! ([`decode`]) and their clock ([`ktime`]).

pub mod decode;
pub mod ktime;
pub mod reader;
