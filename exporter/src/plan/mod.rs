//! From config to probes, pure: each target's probes resolved by their kind ([`resolve`],
//! [`kind`]), what each captures in the kernel ([`capture`]), and which links attach them
//! ([`links`]); [`load`] reads a config and resolves it.

pub mod capture;
pub mod error;
pub mod kind;
pub mod later;
pub mod links;
pub mod load;
pub mod probe;
pub mod processes;
pub mod resolve;
pub mod running;
pub mod target;
