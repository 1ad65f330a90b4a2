//! The `spanprobe` commands: [`run`] wires the stages together and starts the traced command
//! ([`child`]), reporting what saw no call at the end ([`uncalled`]); [`check`], [`init`] and
//! [`symbols`] write and check configs without loading anything into the kernel.

pub mod check;
pub mod child;
pub mod init;
pub mod run;
pub mod symbols;
pub mod uncalled;
