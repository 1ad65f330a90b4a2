//! Where a Go function's probes go, read from its machine code: the entry probe on the branch
//! of the stack check its prologue starts with, and a probe at each `RET`, since a uretprobe
//! corrupts Go's moving stacks.
//!
//! A Go function that needs more stack than it has calls `runtime.morestack`, which copies the
//! goroutine's stack elsewhere and jumps back to the function's first instruction: probed there,
//! the call would enter twice. Probed on the check's conditional branch, the entry program
//! sees the flags the comparison set, and skips a firing whose branch goes to morestack. The
//! kernel emulates a conditional branch, where it single-steps the comparison and the
//! instructions after the branch: a second trap per call, which costs tens of microseconds on
//! some virtual machines.

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic, OpKind, Register};

/// `runtime.g.stackguard0`'s offset, after `stack` (two words): what the prologue compares the
/// stack pointer with, through R14 (the running goroutine's `g`).
const STACKGUARD0: u64 = 16;

/// Instructions at a function's start that may lead to its stack check: for a large frame,
/// `MOVQ SP, R12; SUBQ $n, R12; JCS morestack; CMPQ R12, 16(R14); JLS morestack`.
const PROLOGUE_INSTRUCTIONS: usize = 5;

/// Where a Go function's probes go, as offsets from its first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoSites {
    /// Where its entry probe goes: the stack check's branch to morestack, or 0 for a function
    /// without a stack check.
    pub entry: u64,
    /// Whether [`GoSites::entry`] is the stack check's branch, taken when the stack must grow.
    pub at_stack_check: bool,
    /// Each `RET` instruction.
    pub returns: Vec<u64>,
}

impl GoSites {
    /// The sites of the function whose code is `code`, or `None` when it does not decode (a
    /// symbol whose size runs past its code).
    pub fn find(code: &[u8]) -> Option<Self> {
        let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
        let (mut entry, mut at_stack_check) = (0, false);
        let mut returns = Vec::new();
        let mut compared = false;
        for (n, instruction) in decoder.iter().enumerate() {
            if instruction.is_invalid() {
                return None;
            }
            if n < PROLOGUE_INSTRUCTIONS && is_stack_check(&instruction) {
                compared = true;
            } else if compared {
                // `JLS morestack` (JBE), taken when SP is at or below the guard: CF or ZF.
                if instruction.code() == Code::Jbe_rel8_64
                    || instruction.code() == Code::Jbe_rel32_64
                {
                    (entry, at_stack_check) = (instruction.ip(), true);
                }
                compared = false;
            }
            if instruction.mnemonic() == Mnemonic::Ret {
                returns.push(instruction.ip());
            }
        }
        Some(GoSites {
            entry,
            at_stack_check,
            returns,
        })
    }
}

/// `CMPQ reg, 16(R14)`: the comparison of the stack pointer (or what it will be) with the
/// goroutine's stack guard.
fn is_stack_check(instruction: &iced_x86::Instruction) -> bool {
    instruction.code() == Code::Cmp_r64_rm64
        && instruction.op1_kind() == OpKind::Memory
        && instruction.memory_base() == Register::R14
        && instruction.memory_index() == Register::None
        && instruction.memory_displacement64() == STACKGUARD0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `main.lookup` as Go 1.19 compiles it (tests/programs/go), from `go tool objdump`.
    const LOOKUP: &[u8] = &[
        0x49, 0x3b, 0x66, 0x10, // CMPQ 0x10(R14), SP
        0x76, 0x1b, // JBE morestack
        0x48, 0x83, 0xec, 0x18, // SUBQ $0x18, SP
        0x48, 0x89, 0x6c, 0x24, 0x10, // MOVQ BP, 0x10(SP)
        0x48, 0x8d, 0x6c, 0x24, 0x10, // LEAQ 0x10(SP), BP
        0x48, 0x89, 0xc8, // MOVQ CX, AX
        0x48, 0x8b, 0x6c, 0x24, 0x10, // MOVQ 0x10(SP), BP
        0x48, 0x83, 0xc4, 0x18, // ADDQ $0x18, SP
        0xc3, // RET
        0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, // MOVQ $-1, AX
        0xc3, // RET
        0xe8, 0x00, 0x00, 0x00, 0x00, // CALL runtime.morestack_noctxt
        0xeb, 0xca, // JMP main.lookup
    ];

    #[test]
    fn enters_at_the_stack_check_branch_and_returns_at_every_ret() {
        assert_eq!(
            GoSites::find(LOOKUP),
            Some(GoSites {
                entry: 4,
                at_stack_check: true,
                returns: vec![32, 40],
            })
        );
    }

    #[test]
    fn a_function_without_a_stack_check_enters_at_its_start() {
        // main.handle: MOVQ AX, 0x8(SP); LEAQ 0(BX)(CX*1), AX; RET
        let handle = [0x48, 0x89, 0x44, 0x24, 0x08, 0x48, 0x8d, 0x04, 0x0b, 0xc3];
        assert_eq!(
            GoSites::find(&handle),
            Some(GoSites {
                entry: 0,
                at_stack_check: false,
                returns: vec![9],
            })
        );
    }

    #[test]
    fn a_large_frame_checks_a_computed_stack_pointer() {
        let code = [
            0x4c, 0x8d, 0xa4, 0x24, 0x00, 0xf0, 0xff, 0xff, // LEAQ -0x1000(SP), R12
            0x4d, 0x3b, 0x66, 0x10, // CMPQ 0x10(R14), R12
            0x0f, 0x86, 0x10, 0x00, 0x00, 0x00, // JBE morestack
            0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, // SUBQ $0x1000, SP
            0xc3, // RET
        ];
        let sites = GoSites::find(&code).unwrap();
        assert_eq!((sites.entry, sites.at_stack_check), (12, true));
        assert_eq!(sites.returns, vec![25]);
    }

    #[test]
    fn code_that_does_not_decode_has_no_sites() {
        // A symbol whose size runs into the middle of an instruction.
        assert_eq!(GoSites::find(&[0xc3, 0x48, 0x8b]), None);
    }
}
