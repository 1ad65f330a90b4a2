//! x86-64 as spanprobe meets it: where calling conventions put values (System V, Go's register
//! ABI), registers and operands, and facts about machine code (which instructions the kernel
//! refuses to probe, and which it emulates rather than single-steps; where in a prologue a
//! probe costs one trap; the sites in a Go function's code). No other module of the crate is
//! used here.

pub mod go;
pub mod gocode;
pub mod operand;
pub mod prologue;
pub mod sysv;
pub mod uprobe_insn;

pub use operand::{ArgOperand, Operand, Register};

/// `instruction` as objdump writes it: AT&T syntax, lowercase hex, a RIP-relative operand
/// as `0x..(%rip)` (its displacement), not as the absolute address it resolves to.
pub fn objdump_text(instruction: &iced_x86::Instruction) -> String {
    use iced_x86::{Formatter as _, GasFormatter};
    let mut text = String::new();
    let mut formatter = GasFormatter::new();
    formatter.options_mut().set_uppercase_hex(false);
    formatter.options_mut().set_rip_relative_addresses(true);
    formatter.options_mut().set_branch_leading_zeros(false);
    formatter.format(instruction, &mut text);
    text
}
