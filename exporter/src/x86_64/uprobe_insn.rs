//! Which first instructions the kernel refuses to put a uprobe on (x86-64): the checks of
//! `uprobe_init_insn` in arch/x86/kernel/uprobes.c, so that `check` says so, and a glob leaves
//! such a function out, before `run` meets the kernel's bare `ENOTSUPP` ("Unknown error 524")
//! for a whole link. The tables are the kernel's, row by row: bit `b` of row `r` is opcode
//! `16 * r + b`.

/// Opcodes the kernel probes in 64-bit code (`good_insns_64`).
const ONE_BYTE: [u16; 16] = [
    0b1011_1111_0011_1111, // 00: not 06, 07 (push/pop es), 0e (push cs)
    0b0011_1111_0011_1111, // 10: not 16, 17, 1e, 1f (push/pop ss, ds)
    0b0111_1111_0111_1111, // 20: not 27, 2f (daa, das)
    0b0111_1111_0111_1111, // 30: not 37, 3f (aaa, aas)
    0b1111_1111_1111_1111, // 40
    0b1111_1111_1111_1111, // 50
    0b0000_1111_1111_1000, // 60: not 60-62 (pusha, popa, bound/EVEX), 6c-6f (ins, outs)
    0b1111_1111_1111_1111, // 70
    0b1111_1111_1111_1011, // 80: not 82
    0b1111_1011_1111_1111, // 90: not 9a (call far)
    0b1111_1111_1111_1111, // a0
    0b1111_1111_1111_1111, // b0
    0b0000_1111_1111_1111, // c0: not cc-cf (int3, int N, into, iret)
    0b1111_1111_1000_1111, // d0: not d4-d6 (aam, aad, salc)
    0b0000_1011_0000_1111, // e0: not e4-e7 (in, out), ea (jmp far), ec-ef (in, out)
    0b1111_0011_1110_1101, // f0: not f1 (int1), f4 (hlt), fa, fb (cli, sti)
];

/// Opcodes after `0f` the kernel probes (`good_2byte_insns`).
const TWO_BYTE: [u16; 16] = [
    0b1111_0100_0001_1100, // 00: not 00, 01 (system groups), 05-09 (syscall, ...), 0b (ud2)
    0b1111_1111_1111_1111, // 10
    0b1111_1111_1111_1111, // 20
    0b1111_1111_0100_1110, // 30: not 30 (wrmsr), 34, 35 (sysenter/exit), 37 (getsec)
    0b1111_1111_1111_1111, // 40
    0b1111_1111_1111_1111, // 50
    0b1111_1111_1111_1111, // 60
    0b1111_1100_1111_1111, // 70: not 78, 79 (vmread, vmwrite)
    0b1111_1111_1111_1111, // 80
    0b1111_1111_1111_1111, // 90
    0b1011_1111_1111_1111, // a0: not ae (fxsave, fences, ...)
    0b1111_1111_1111_1111, // b0
    0b1111_1111_1111_1111, // c0
    0b1111_1111_1111_1111, // d0
    0b1111_1111_1111_1111, // e0
    0b1111_1111_1111_1111, // f0
];

fn allowed(table: &[u16; 16], opcode: u8) -> bool {
    table[usize::from(opcode >> 4)] & (1 << (opcode & 0xf)) != 0
}

/// Why the kernel refuses a uprobe on the instruction `code` starts with, or `None` when it
/// accepts one there.
pub fn refusal(code: &[u8]) -> Option<&'static str> {
    let mut rest = code;
    // Legacy prefixes, in any order.
    while let [
        prefix @ (0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3),
        tail @ ..,
    ] = rest
    {
        match prefix {
            0xf0 => return Some("a LOCK prefix, which uprobes do not single-step"),
            0x26 | 0x2e | 0x36 | 0x3e => {
                return Some("an ES, CS, SS or DS segment prefix, which uprobes refuse");
            }
            _ => rest = tail,
        }
    }
    // REX, then the opcode; a VEX prefix is followed by its opcode, which the kernel looks up
    // in the one-byte table.
    if let [0x40..=0x4f, tail @ ..] = rest {
        rest = tail;
    }
    let (opcode, two_byte, vex) = match rest {
        [0xc5, _, opcode, ..] => (*opcode, false, true),
        [0xc4, _, _, opcode, ..] => (*opcode, false, true),
        [0x0f, opcode, ..] => (*opcode, true, false),
        [opcode, ..] => (*opcode, false, false),
        [] => return None,
    };
    let accepted = if two_byte {
        allowed(&TWO_BYTE, opcode)
    } else {
        allowed(&ONE_BYTE, opcode)
    };
    // `mov ..., %ss` masks exceptions for the next instruction, which single-stepping breaks.
    let masking = !two_byte && opcode == 0x8e && rest.get(1).is_some_and(|m| (m >> 3) & 7 == 2);
    if masking {
        return Some("a move to SS, which uprobes do not single-step");
    }
    match (accepted, vex) {
        (true, _) => None,
        (false, false) => {
            Some("an opcode outside the kernel's table of instructions uprobes single-step")
        }
        (false, true) => Some(
            "a VEX prefix, whose opcode the kernel looks up in its one-byte table: outside the \
             kernel's table of instructions uprobes single-step",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologues_are_accepted() {
        for code in [
            &[0x55][..],                                    // push %rbp
            &[0xf3, 0x0f, 0x1e, 0xfa],                      // endbr64
            &[0x48, 0x83, 0xec, 0x18],                      // sub $0x18,%rsp
            &[0x41, 0x57],                                  // push %r15
            &[0x80, 0x3d, 0, 0, 0, 0, 0],                   // cmpb $0,rel(%rip)
            &[0xc5, 0xf8, 0x77],                            // vzeroupper: VEX, opcode 77
            &[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], // mov %fs:0x28,%rax
            &[0x0f, 0x1f, 0x44, 0, 0],                      // nopl 0(%rax,%rax)
        ] {
            assert_eq!(refusal(code), None, "{code:02x?}");
        }
    }

    #[test]
    fn what_the_kernel_refuses_is_named() {
        // lock decl (%rdi): pthread_spin_lock's first instruction.
        assert!(
            refusal(&[0xf0, 0xff, 0x0f])
                .unwrap()
                .contains("LOCK prefix")
        );
        assert!(
            refusal(&[0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0])
                .unwrap()
                .contains("CS")
        );
        for code in [
            &[0xcc][..],
            &[0xf4],
            &[0x0f, 0x05],
            &[0x0f, 0x0b],
            &[0x0f, 0xae, 0xf0],
        ] {
            assert!(
                refusal(code)
                    .unwrap()
                    .contains("outside the kernel's table"),
                "{code:02x?}"
            );
        }
        // VEX instructions by their opcode in the one-byte table, as the kernel looks them up:
        // vmovdqu (%rdi),%xmm0 and vpxor %xmm0,%xmm0,%xmm0 (refused by this machine's kernel).
        for code in [&[0xc5, 0xfa, 0x6f, 0x07][..], &[0xc5, 0xf9, 0xef, 0xc0]] {
            assert!(
                refusal(code)
                    .unwrap()
                    .contains("outside the kernel's table"),
                "{code:02x?}"
            );
        }
        assert!(refusal(&[0x8e, 0xd0]).unwrap().contains("SS"));
        assert_eq!(refusal(&[0x8e, 0xd8]), None, "mov %eax,%ds");
    }

    #[test]
    fn tables_match_the_kernels_rows() {
        // Spot checks against arch/x86/kernel/uprobes.c.
        let refused = |t: &[u16; 16], ops: &[u8]| ops.iter().all(|&op| !allowed(t, op));
        assert!(refused(
            &ONE_BYTE,
            &[0x06, 0x07, 0x0e, 0x9a, 0xce, 0xd6, 0xea, 0xfa, 0xfb]
        ));
        assert!(refused(
            &TWO_BYTE,
            &[0x00, 0x01, 0x06, 0x07, 0x08, 0x09, 0x34, 0x37, 0x79]
        ));
        let allowed_all = |t: &[u16; 16], ops: &[u8]| ops.iter().all(|&op| allowed(t, op));
        assert!(allowed_all(
            &ONE_BYTE,
            &[0x0f, 0x26, 0x63, 0xe8, 0xe9, 0xeb, 0xf0, 0xff]
        ));
        assert!(allowed_all(
            &TWO_BYTE,
            &[0x02, 0x0a, 0x1f, 0x31, 0x36, 0x84, 0xaf]
        ));
    }
}
