//! From a completed call to a queued span: assembly ([`span`], [`ids`]), the process's
//! resource ([`resource`]), symbolized backtraces ([`backtraces`]), stacks unwound in userspace ([`unwind`], [`windows`]), `min_duration` holding ([`trace_buffer`]),
//! the per-record stage ([`pipeline`]) and the per-name table at exit ([`summary`]).

pub mod backtraces;
pub mod container;
pub mod ids;
pub mod pipeline;
pub mod resource;
pub mod span;
pub mod summary;
pub mod trace_buffer;
pub mod unwind;
pub mod windows;
