//! From a completed call to a queued span: assembly ([`span`], [`ids`]), the process's
//! resource ([`resource`]), stacks ([`stacks`]), `min_duration` holding ([`trace_buffer`]),
//! the per-record stage ([`pipeline`]) and what it counts ([`summary`], [`losses`]).

pub mod ids;
pub mod losses;
pub mod pipeline;
pub mod resource;
pub mod span;
pub mod stacks;
pub mod summary;
pub mod trace_buffer;
