//! Whether a binary's code keeps frame pointers. A stack captured at entry is walked along
//! RBP through each caller: a caller compiled without frame pointers (most distributions'
//! libraries, release builds of C++ and Rust) leaves RBP holding anything, and the walk
//! stops there, or goes astray. Told from the functions' prologues: with frame pointers,
//! nearly every function starts `push %rbp; mov %rsp,%rbp` (after an `endbr64`); without,
//! only the few that need a frame (`alloca`, variable-length arrays) do.

use crate::binary::{Binary, elf::ENDBR64};

/// What a binary's code does with RBP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePointers {
    /// Its functions set up a frame pointer: a walk passes through them.
    Kept,
    /// Most of its functions do not: a walk through them stops early.
    Omitted,
    /// Too few functions to tell, or its code could not be read.
    Unknown,
}

/// Functions looked at, at most: enough to tell, and cheap for a large binary.
const SAMPLE: usize = 400;
/// Functions shorter than this are left out: a compiler may leave a leaf's frame out even
/// when it keeps the others'.
const SMALLEST: usize = 32;
/// Fewer functions than this tell nothing: a small program's are mostly the C runtime's.
const FEWEST: usize = 4;
/// A binary with at least this share of its functions setting up RBP keeps frame pointers.
const KEPT_SHARE: f64 = 0.5;

/// Functions the C runtime links into every program, built as the toolchain was, not as the
/// program: in a small program they would outnumber its own.
const C_RUNTIME: [&str; 8] = [
    "_start",
    "_init",
    "_fini",
    "deregister_tm_clones",
    "register_tm_clones",
    "__do_global_dtors_aux",
    "frame_dummy",
    "__libc_csu_init",
];

/// `push %rbp; mov %rsp,%rbp`.
const FRAME_SETUP: [u8; 4] = [0x55, 0x48, 0x89, 0xe5];

impl FramePointers {
    /// What `binary`'s code does with RBP. Go's compiler keeps frame pointers on x86-64 (its
    /// functions set RBP after their stack check, not at entry).
    pub fn of(binary: &Binary) -> Self {
        if binary.elf.is_go {
            return Self::Kept;
        }
        let Ok(symbols) = binary.symbols() else {
            return Self::Unknown;
        };
        let prologues = symbols
            .functions()
            .iter()
            .filter(|function| function.size >= SMALLEST)
            .filter(|function| !C_RUNTIME.contains(&function.name.as_str()))
            .filter_map(|function| binary.code.bytes(function.file_offset?, 8))
            .take(SAMPLE);
        Self::from_prologues(prologues)
    }

    /// The verdict on functions whose first 8 bytes are `prologues`.
    fn from_prologues(prologues: impl Iterator<Item = Vec<u8>>) -> Self {
        let (mut seen, mut framed) = (0usize, 0usize);
        for code in prologues {
            seen += 1;
            let code = code.strip_prefix(&ENDBR64[..]).unwrap_or(&code);
            if code.starts_with(&FRAME_SETUP) {
                framed += 1;
            }
        }
        if seen < FEWEST {
            Self::Unknown
        } else if framed as f64 >= KEPT_SHARE * seen as f64 {
            Self::Kept
        } else {
            Self::Omitted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prologues(framed: usize, plain: usize) -> impl Iterator<Item = Vec<u8>> {
        let with = [0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5].to_vec();
        let without = [0x41, 0x57, 0x41, 0x56, 0x49, 0x89, 0xfe, 0x53].to_vec();
        std::iter::repeat_n(with, framed).chain(std::iter::repeat_n(without, plain))
    }

    #[test]
    fn tells_by_the_share_of_framed_prologues() {
        assert_eq!(
            FramePointers::from_prologues(prologues(95, 5)),
            FramePointers::Kept
        );
        assert_eq!(
            FramePointers::from_prologues(prologues(3, 97)),
            FramePointers::Omitted
        );
        assert_eq!(
            FramePointers::from_prologues(prologues(1, 2)),
            FramePointers::Unknown
        );
        let plain_push = [0x55, 0x48, 0x89, 0xe5, 0x90, 0x90, 0x90, 0x90].to_vec();
        assert_eq!(
            FramePointers::from_prologues(std::iter::repeat_n(plain_push, 10)),
            FramePointers::Kept
        );
    }
}
