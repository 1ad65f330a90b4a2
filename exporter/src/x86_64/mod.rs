//! x86-64 as spanprobe meets it: where calling conventions put values (System V, Go's register
//! ABI), registers and operands, and facts about machine code (which instructions the kernel
//! probes without a single step, the sites in a Go function's code). No other module of the
//! crate is used here.

pub mod go;
pub mod gocode;
pub mod operand;
pub mod sysv;
pub mod uprobe_insn;

pub use operand::{ArgOperand, Operand, Register};
