//! Where in a function's first instructions its probes cost one trap rather than two: the
//! kernel emulates a probed `push`, `nop`, relative `jmp`/`jcc`/`call`, and single-steps any
//! other instruction out of line (a second trap per call, 15-20 µs on virtual machines). Most
//! prologues built without frame pointers start with instructions that the probe can let run
//! first: they change no argument register, neither the stack pointer nor the frame pointer,
//! and no memory, so at the first emulated instruction after them the arguments, the return
//! address at `[rsp]` (which the return probe takes over there) and the frame chain are as
//! they were at the entry.

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

/// Most instructions a probe moves past: a prologue's first few, not the function's body.
const MAX_MOVED_PAST: usize = 8;

/// The argument registers a function's probe reads at its entry, by System V slot (RDI, RSI,
/// RDX, RCX, R8, R9): an instruction may write the others before the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadArguments(u8);

impl ReadArguments {
    /// Every argument register: what a probe whose captures are not known yet may read.
    pub const ALL: Self = Self(0b11_1111);
    pub const NONE: Self = Self(0);

    /// These and slot `slot` (a stack slot, from 6 on, changes nothing: memory is never
    /// written before a probe).
    #[must_use]
    pub fn and(self, slot: u8) -> Self {
        Self(self.0 | 1u8.checked_shl(u32::from(slot)).unwrap_or(0) & Self::ALL.0)
    }

    fn reads(self, register: Register) -> bool {
        let slot = match register {
            Register::RDI => 0,
            Register::RSI => 1,
            Register::RDX => 2,
            Register::RCX => 3,
            Register::R8 => 4,
            Register::R9 => 5,
            _ => return false,
        };
        self.0 & (1 << slot) != 0
    }
}

/// Where a function's probes go, past its first instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSite {
    /// Bytes from the entry.
    pub skip: u64,
    /// The instructions moved past, as objdump shows them.
    pub moved_past: Vec<String>,
    /// The emulated instruction the probes sit on.
    pub onto: String,
}

/// Whether the kernel emulates `instruction` when a uprobe is on it (x86-64's
/// `branch_setup_xol_ops` and `push_setup_xol_ops`): a register push, a nop, and relative
/// jumps and calls. Any other is single-stepped.
pub fn emulated(instruction: &Instruction) -> bool {
    match instruction.mnemonic() {
        Mnemonic::Push => instruction.op0_kind() == OpKind::Register,
        Mnemonic::Nop => true,
        Mnemonic::Jmp | Mnemonic::Call => instruction.op0_kind() == OpKind::NearBranch64,
        _ => instruction.is_jcc_short_or_near(),
    }
}

/// Why a function's probes stay at its entry, as `check` says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stay {
    #[error("its first instruction is emulated already")]
    Emulated,
    #[error("`{instruction}` {change}")]
    Changes {
        instruction: String,
        change: &'static str,
    },
    #[error(
        "a branch of the function lands on `{instruction}`, where a moved probe would fire again"
    )]
    BranchLands { instruction: String },
    #[error("no instruction the kernel emulates within its first {MAX_MOVED_PAST}")]
    NoneClose,
    #[error("its code does not decode")]
    Undecodable,
    #[error("it is too long to find every branch into its first instructions")]
    TooLong,
}

/// Where the probes of the function whose code is `code` (all of it, from its entry at
/// `address`) go, reading the argument registers `read`: onto the first instruction the
/// kernel emulates, past those before it when each leaves what a probe reads as it was at the
/// entry (see [`entry_state_change`]) and no branch of the function lands on one of them or
/// on the probed one (a probe there would fire again). Otherwise why they stay at the entry.
pub fn probe_site(code: &[u8], address: u64, read: ReadArguments) -> Result<ProbeSite, Stay> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut moved_past = Vec::new();
    let mut skip = 0u64;
    for _ in 0..=MAX_MOVED_PAST {
        if !decoder.can_decode() {
            return Err(Stay::Undecodable);
        }
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return Err(Stay::Undecodable);
        }
        let text = super::objdump_text(&instruction);
        if emulated(&instruction) {
            if moved_past.is_empty() {
                return Err(Stay::Emulated);
            }
            if let Some(landed) = lands_within(code, address, skip) {
                let instruction = moved_past.get(landed).cloned().unwrap_or(text);
                return Err(Stay::BranchLands { instruction });
            }
            return Ok(ProbeSite {
                skip,
                moved_past,
                onto: text,
            });
        }
        if let Some(change) = entry_state_change(&instruction, &mut info, read) {
            return Err(Stay::Changes {
                instruction: text,
                change,
            });
        }
        moved_past.push(text);
        skip += instruction.len() as u64;
    }
    Err(Stay::NoneClose)
}

/// What `instruction`, run before a probe, changes of what the probe reads at a function's
/// entry, if anything: it must always fall through to the next one, and write no memory (the
/// stack arguments and the return address are there), none of the argument registers `read`
/// (RDI, RSI, RDX, RCX, R8, R9, in any width), and neither RSP (the return address's place,
/// which the return probe takes over) nor RBP (where a stack walk starts).
pub fn entry_state_change(
    instruction: &Instruction,
    info: &mut InstructionInfoFactory,
    read: ReadArguments,
) -> Option<&'static str> {
    if instruction.flow_control() != FlowControl::Next {
        return Some("does not always run the next instruction");
    }
    let used = info.info(instruction);
    let writes = |access: OpAccess| {
        !matches!(
            access,
            OpAccess::None | OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess
        )
    };
    if used
        .used_memory()
        .iter()
        .any(|memory| writes(memory.access()))
    {
        return Some("writes memory, where the stack arguments and the return address are");
    }
    let written = used
        .used_registers()
        .iter()
        .filter(|used| writes(used.access()))
        .map(|used| used.register().full_register());
    for register in written {
        match register {
            Register::RSP => {
                return Some("moves RSP, where the return probe finds the return address");
            }
            Register::RBP => return Some("writes RBP, where a stack walk starts"),
            register if read.reads(register) && read == ReadArguments::ALL => {
                return Some("writes an argument register");
            }
            register if read.reads(register) => {
                return Some("writes an argument register the probe reads");
            }
            _ => {}
        }
    }
    None
}

/// Where a direct branch of the function in `code` (from `address`) lands past its entry and
/// no further than `skip` bytes in, if one does: on which of the instructions a probe moved
/// past (by its place among them, the probed one last). An indirect branch (a jump table)
/// cannot be followed: none is expected in a prologue's first instructions.
fn lands_within(code: &[u8], address: u64, skip: u64) -> Option<usize> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            // Data in the code (a jump table, padding): no branch is read past it.
            continue;
        }
        let target = match instruction.op0_kind() {
            OpKind::NearBranch64 => instruction.near_branch_target(),
            _ => continue,
        };
        if target > address && target <= address + skip {
            return Some(instruction_index(code, address, target));
        }
    }
    None
}

/// The place, among the instructions from the start of `code` (at `address`), of the one at
/// `target`.
fn instruction_index(code: &[u8], address: u64, target: u64) -> usize {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut index = 0;
    while decoder.can_decode() && decoder.ip() < target {
        let _ = decoder.decode();
        index += 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: u64 = 0x1000;

    fn site(code: &[u8]) -> Option<(u64, Vec<String>, String)> {
        probe_site(code, ADDRESS, ReadArguments::ALL)
            .ok()
            .map(|site| (site.skip, site.moved_past, site.onto))
    }

    fn why(code: &[u8]) -> String {
        probe_site(code, ADDRESS, ReadArguments::ALL)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn moves_past_writes_to_argument_registers_no_probe_reads() {
        // xor %edx,%edx; jmp +0x10: redis's lookupKeyRead, a tail call with a third argument.
        let code = [0x31, 0xd2, 0xeb, 0x10];
        let at = |read| probe_site(&code, ADDRESS, read).map(|site| site.skip);
        assert_eq!(at(ReadArguments::NONE), Ok(2));
        assert_eq!(at(ReadArguments::NONE.and(0).and(1).and(6)), Ok(2));
        assert_eq!(
            at(ReadArguments::NONE.and(2)).unwrap_err().to_string(),
            "`xor %edx,%edx` writes an argument register the probe reads"
        );
        assert!(at(ReadArguments::ALL).is_err());
        // Neither RSP nor memory, whatever is read: mov %rdi,(%rsp); push %rbx.
        let code = [0x48, 0x89, 0x3c, 0x24, 0x53];
        assert!(probe_site(&code, ADDRESS, ReadArguments::NONE).is_err());
    }

    #[test]
    fn moves_past_what_leaves_the_arguments_onto_an_emulated_instruction() {
        // endbr64; push %rbp
        assert_eq!(
            site(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55]),
            Some((4, vec!["endbr64".into()], "push %rbp".into()))
        );
        // test %rdi,%rdi; je +0x10 (beyond the moved-past bytes)
        assert_eq!(
            site(&[0x48, 0x85, 0xff, 0x74, 0x10]),
            Some((3, vec!["test %rdi,%rdi".into()], "je 0x1015".into()))
        );
        // mov %rdi,%rbx (a callee-saved register); mov 0x10(%rip),%rax (a load); push %r12
        assert_eq!(
            site(&[
                0x48, 0x89, 0xfb, 0x48, 0x8b, 0x05, 0x10, 0, 0, 0, 0x41, 0x54
            ]),
            Some((
                10,
                vec!["mov %rdi,%rbx".into(), "mov 0x10(%rip),%rax".into()],
                "push %r12".into()
            ))
        );
    }

    #[test]
    fn stays_at_the_entry_when_an_instruction_before_changes_what_a_probe_reads() {
        // Already emulated: push %rbp.
        assert_eq!(site(&[0x55, 0x48, 0x89, 0xe5]), None);
        // sub $0x18,%rsp: the return address moves.
        assert_eq!(site(&[0x48, 0x83, 0xec, 0x18, 0x55]), None);
        // mov %rsi,%rdi: an argument register is written.
        assert_eq!(site(&[0x48, 0x89, 0xf7, 0x55]), None);
        // xor %ecx,%ecx: so is its low half.
        assert_eq!(site(&[0x31, 0xc9, 0x55]), None);
        // mov %rbx,0x8(%rsp): a stack argument is overwritten.
        assert_eq!(site(&[0x48, 0x89, 0x5c, 0x24, 0x08, 0x55]), None);
        // xor %ebp,%ebp: where a stack walk starts.
        assert_eq!(site(&[0x31, 0xed, 0x55]), None);
        // ret: not every call reaches what follows.
        assert_eq!(site(&[0xc3, 0x55]), None);
        // What check says of each.
        assert_eq!(
            why(&[0x48, 0x83, 0xec, 0x18, 0x55]),
            "`sub $0x18,%rsp` moves RSP, where the return probe finds the return address"
        );
        assert_eq!(
            why(&[0x31, 0xc9, 0x55]),
            "`xor %ecx,%ecx` writes an argument register"
        );
        assert_eq!(why(&[0x55]), "its first instruction is emulated already");
    }

    #[test]
    fn stays_at_the_entry_when_a_branch_lands_on_the_moved_past_code() {
        // 0: test %rdi,%rdi; 3: je 0x1008; 5: nop; ... a loop back to 3 (jmp 0x1003) would fire
        // the probe on je again.
        let code = [0x48, 0x85, 0xff, 0x74, 0x03, 0x90, 0x90, 0x90, 0xeb, 0xf9];
        assert_eq!(site(&code), None);
        assert_eq!(
            why(&code),
            "a branch of the function lands on `je 0x1008`, where a moved probe would fire again"
        );
        // Back to the entry itself: as at an entry probe, every pass fires.
        let code = [0x48, 0x85, 0xff, 0x74, 0x03, 0x90, 0x90, 0x90, 0xeb, 0xf6];
        assert_eq!(site(&code).map(|(skip, ..)| skip), Some(3));
    }

    #[test]
    fn goes_no_further_than_a_prologue() {
        // Nine loads of RAX, then a push: too far in to be a prologue's first instructions.
        let mut code: Vec<u8> = [0x48, 0x8b, 0x07].repeat(9);
        code.push(0x55);
        assert_eq!(site(&code), None);
        assert_eq!(
            why(&code),
            "no instruction the kernel emulates within its first 8"
        );
        assert_eq!(site(&code[3..]).map(|(skip, ..)| skip), Some(24));
    }
}
