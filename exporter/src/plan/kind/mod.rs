//! The kinds of probe: how a probed place's span starts and ends, and where its arguments are
//! read. Each kind resolves its config entries to [`ProbedFunction`]s (its own file here); the
//! capture plan, the link plan and `check` ask the kind, not the config, so a new kind (USDT
//! start/end pairs) is a file here, a variant of [`ProbeKind`], and its
//! config list in the schema.
//!
//! [`ProbedFunction`]: crate::plan::probe::ProbedFunction

pub mod claims;
pub mod function;
pub mod gocall;
pub mod goruntime;
pub mod usdt;
