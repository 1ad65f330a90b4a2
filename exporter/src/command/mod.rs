//! The helper commands that write and check configs without loading anything into the kernel.

pub mod check;
pub mod init;
pub mod symbols;
