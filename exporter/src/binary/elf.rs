//! What spanprobe needs to know about an ELF file before probing it: that it is an x86-64
//! ELF, where its executable code is in the file, whether it is a Go binary, and what each
//! probed function's first instructions are.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use object::{
    Architecture, Endianness, Object as _, ObjectSegment as _, ObjectSymbol as _, SegmentFlags,
    SymbolKind,
    elf::{DT_NEEDED, DT_SONAME, PF_X},
    read::elf::ElfFile64,
};

use crate::x86_64::objdump_text;

/// A loadable, executable segment: file bytes `offset..offset + size` map to virtual
/// addresses `address..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecSegment {
    pub address: u64,
    pub offset: u64,
    pub size: u64,
}

impl ExecSegment {
    /// Where `segment`'s file bytes are, and the addresses they load at.
    fn of<'data>(segment: &impl object::ObjectSegment<'data>) -> Self {
        let (offset, size) = segment.file_range();
        ExecSegment {
            address: segment.address(),
            offset,
            size,
        }
    }
}

/// The loadable segments of an ELF file (`PT_LOAD`): which file bytes hold which virtual
/// addresses. A separate debug file shares its binary's addresses but holds none of its bytes,
/// so the binary's segments place what the debug file names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSegments(Vec<ExecSegment>);

impl LoadSegments {
    pub fn of(file: &object::File<'_>) -> Self {
        Self(file.segments().map(|s| ExecSegment::of(&s)).collect())
    }

    /// The file offset of virtual address `address`, if the file holds it.
    pub fn file_offset(&self, address: u64) -> Option<u64> {
        self.0
            .iter()
            .find(|s| (s.address..s.address.saturating_add(s.size)).contains(&address))
            .map(|s| address - s.address + s.offset)
    }

    /// The virtual address of file offset `offset`, if it is loaded.
    pub fn address(&self, offset: u64) -> Option<u64> {
        self.0
            .iter()
            .find(|s| (s.offset..s.offset.saturating_add(s.size)).contains(&offset))
            .map(|s| offset - s.offset + s.address)
    }
}

/// The facts about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub exec_segments: Vec<ExecSegment>,
    /// Built by the Go toolchain: uretprobes corrupt Go stacks (Go moves goroutine stacks).
    pub is_go: bool,
    /// For a Go executable: the dynamic type of an `error` by the address of its itab (the
    /// interface's type word), from the itab symbols (`go.itab.*errors.errorString,error`).
    /// Empty for a position-independent one, whose addresses move at load.
    pub go_error_types: Arc<BTreeMap<u64, String>>,
    /// For a Go binary: the entry of every Go function, from `.gopclntab`; the rest of its
    /// code is C (cgo), called by the System V convention on a thread's stack. Empty when the
    /// table cannot be read: every function is then taken for Go.
    pub go_code: Arc<HashSet<u64>>,
    /// For a Go binary, the toolchain's version (major, minor) from `.go.buildinfo`, when it
    /// can be read: Go 1.17 and later pass arguments in registers.
    pub go_version: Option<(u32, u32)>,
    /// Has a static symbol table (`.symtab`); stripped binaries have only `.dynsym`, if that.
    pub has_symtab: bool,
    /// The virtual address execution starts at (`e_entry`), if it is in code. It is jumped to,
    /// not called: where a return address would be, `[rsp]` holds argc.
    pub entry_point: Option<u64>,
}

/// When the ELF file at `path` imports `symbol` (an undefined dynamic symbol), the library it
/// needs (`DT_NEEDED`) that defines it, by the name the loader knows it by: where a user who
/// named the symbol should probe. `Some(None)` when no library it names directly defines it.
pub fn defining_library(path: &Path, symbol: &str) -> Option<Option<String>> {
    let data = std::fs::read(path).ok()?;
    let file = ElfFile64::<Endianness>::parse(&*data).ok()?;
    let imported = file
        .dynamic_symbols()
        .any(|s| s.is_undefined() && s.name() == Ok(symbol));
    if !imported {
        return None;
    }
    let defines = |library: &String| {
        let Some(data) =
            crate::binary::locate::find_library(library).and_then(|p| std::fs::read(p).ok())
        else {
            return false;
        };
        ElfFile64::<Endianness>::parse(&*data).is_ok_and(|library| {
            library.dynamic_symbols().any(|s| {
                !s.is_undefined() && s.kind() == SymbolKind::Text && s.name() == Ok(symbol)
            })
        })
    };
    Some(needed(&file).into_iter().find(defines))
}

/// The libraries the ELF file at `path` needs (`DT_NEEDED`), by the names the loader looks up;
/// empty when it cannot be read.
pub fn needed_libraries(path: &Path) -> Vec<String> {
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    ElfFile64::<Endianness>::parse(&*data)
        .map(|file| needed(&file))
        .unwrap_or_default()
}

/// The shared library's own name (`DT_SONAME`), which the loader finds it by, if it has one.
pub fn soname(path: &Path) -> Option<String> {
    let data = std::fs::read(path).ok()?;
    let file = ElfFile64::<Endianness>::parse(&*data).ok()?;
    dynamic_strings(&file, DT_SONAME).into_iter().next()
}

fn needed(file: &ElfFile64<'_, Endianness>) -> Vec<String> {
    dynamic_strings(file, DT_NEEDED)
}

/// The string values of the dynamic entries tagged `tag`, in order.
fn dynamic_strings(file: &ElfFile64<'_, Endianness>, tag: i64) -> Vec<String> {
    let Ok(table) = file.elf_dynamic_table() else {
        return Vec::new();
    };
    table
        .iter()
        .filter(|entry| entry.tag == tag)
        .filter_map(|entry| table.string(entry).ok())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// The entries of the Go functions of a Go binary, from its `.gopclntab`.
fn go_code(file: &object::File<'_>) -> HashSet<u64> {
    crate::binary::gopclntab::of_file(file)
        .map(|functions| functions.iter().map(|f| f.address).collect())
        .unwrap_or_default()
}

/// The dynamic types of `error` values by their itab's address, in a Go executable that is not
/// position-independent: the linker names each itab `go.itab.<type>,<interface>` (`go:itab.`
/// since Go 1.20).
fn go_error_types(file: &object::File<'_>) -> BTreeMap<u64, String> {
    if file.kind() != object::ObjectKind::Executable {
        return BTreeMap::new();
    }
    file.symbols()
        .filter_map(|symbol| {
            let name = symbol.name().ok()?;
            let itab = name
                .strip_prefix("go.itab.")
                .or_else(|| name.strip_prefix("go:itab."))?;
            let ty = itab.strip_suffix(",error")?;
            Some((symbol.address(), ty.to_owned()))
        })
        .collect()
}

/// The Go version a Go binary was built by, from its `.go.buildinfo`: the 32-byte header
/// (`\xff Go buildinf:`, pointer size, flags), then the version as a length-prefixed string
/// (Go 1.18 and later, flag 2) or as a pointer to a Go string header (before).
fn go_version(file: &object::File<'_>) -> Option<(u32, u32)> {
    use object::ObjectSection as _;
    let data = file.section_by_name(".go.buildinfo")?.data().ok()?;
    let header = data.get(..32)?;
    if !header.starts_with(b"\xff Go buildinf:") {
        return None;
    }
    let text: Vec<u8> = if header[15] & 2 != 0 {
        // A one-byte varint length suffices for a version string.
        let len = usize::from(*data.get(32)?);
        data.get(33..33 + len)?.to_vec()
    } else {
        let word = |bytes: &[u8]| Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?));
        let string_header = word(&header[16..])?;
        let read = |address: u64, len: usize| -> Option<Vec<u8>> {
            file.sections().find_map(|section| {
                let start = section.address();
                let end = start + section.size();
                if !(start..end).contains(&address) {
                    return None;
                }
                let at = usize::try_from(address - start).ok()?;
                Some(section.data().ok()?.get(at..at + len)?.to_vec())
            })
        };
        let fields = read(string_header, 16)?;
        let (pointer, len) = (word(&fields)?, word(&fields[8..])?);
        read(pointer, usize::try_from(len).ok()?.min(64))?
    };
    let text = std::str::from_utf8(&text).ok()?.strip_prefix("go")?;
    let mut numbers = text
        .split(['.', 'r', 'b', '-'])
        .map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// The contents of the file at `path`: read once by whoever parses it several ways.
pub fn read(path: &Path) -> Result<Vec<u8>, ElfError> {
    std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Why a file cannot be probed.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an ELF file", path.display())]
    NotElf { path: PathBuf },
    #[error("{}: {architecture} ELF, but spanprobe probes x86-64 code", path.display())]
    WrongArchitecture { path: PathBuf, architecture: String },
}

impl ElfInfo {
    pub fn read(path: &Path) -> Result<Self, ElfError> {
        Self::parse(path, &read(path)?)
    }

    /// The facts about the ELF file at `path`, whose contents are `data`.
    pub fn parse(path: &Path, data: &[u8]) -> Result<Self, ElfError> {
        let file = object::File::parse(data)
            .ok()
            .filter(|f| matches!(f.format(), object::BinaryFormat::Elf))
            .ok_or_else(|| ElfError::NotElf {
                path: path.to_owned(),
            })?;
        if file.architecture() != Architecture::X86_64 {
            return Err(ElfError::WrongArchitecture {
                path: path.to_owned(),
                architecture: format!("{:?}", file.architecture()),
            });
        }
        let exec_segments = file
            .segments()
            .filter(|s| matches!(s.flags(), SegmentFlags::Elf { p_flags } if p_flags & PF_X != 0))
            .map(|s| ExecSegment::of(&s))
            .collect();
        let is_go = file.section_by_name(".go.buildinfo").is_some()
            || file.section_by_name(".note.go.buildid").is_some()
            || file.section_by_name(".gopclntab").is_some();
        let has_symtab = file.section_by_name(".symtab").is_some();
        let (go_error_types, go_code) = if is_go {
            (go_error_types(&file), go_code(&file))
        } else {
            (BTreeMap::new(), HashSet::new())
        };
        let mut info = Self {
            exec_segments,
            is_go,
            go_version: go_version(&file),
            go_error_types: Arc::new(go_error_types),
            go_code: Arc::new(go_code),
            has_symtab,
            entry_point: None,
        };
        info.entry_point =
            Some(file.entry()).filter(|&entry| info.address_to_offset(entry).is_some());
        Ok(info)
    }

    /// Whether the code at `address` is a Go function's: in a Go binary, and not C (see
    /// [`ElfInfo::go_code`]).
    pub fn is_go_code(&self, address: Option<u64>) -> bool {
        self.is_go
            && (self.go_code.is_empty()
                || address.is_none_or(|address| self.go_code.contains(&address)))
    }

    /// Whether the code at file offset `offset` is the entry point (see [`Self::entry_point`]).
    pub fn is_entry_point(&self, offset: u64) -> bool {
        self.entry_point
            .is_some_and(|entry| self.address_to_offset(entry) == Some(offset))
    }

    /// The file offset of virtual address `address`, if it is in executable code.
    pub fn address_to_offset(&self, address: u64) -> Option<u64> {
        self.exec_segments
            .iter()
            .find(|s| (s.address..s.address.saturating_add(s.size)).contains(&address))
            .map(|s| address - s.address + s.offset)
    }

    /// Whether file offset `offset` is in executable code.
    pub fn offset_is_code(&self, offset: u64) -> bool {
        self.offset_to_address(offset).is_some()
    }

    /// The virtual address of file offset `offset`, if it is in executable code.
    pub fn offset_to_address(&self, offset: u64) -> Option<u64> {
        self.exec_segments
            .iter()
            .find(|s| (s.offset..s.offset.saturating_add(s.size)).contains(&offset))
            .map(|s| offset - s.offset + s.address)
    }
}

/// `endbr64`, the first instruction of every function built with `-fcf-protection` (Intel
/// CET's indirect-branch tracking: the default on Ubuntu and Fedora).
pub const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// How far past a function's entry its probes go, given the bytes there: past an `endbr64`
/// followed by a register push, 0 otherwise.
///
/// The kernel emulates a probed `push` but single-steps an `endbr64` out of line, which costs
/// about ten times more per call (BENCHMARKS.md); `endbr64` changes no register and not the
/// stack, so a probe after it sees the same arguments and return address. Only a push
/// qualifies: no compiler branches back to one (that would push twice), while any other
/// instruction may head a loop that starts the function, and a probe there would fire on every
/// iteration. Other instructions are single-stepped as well, so moving the probe onto them
/// would gain nothing anyway.
pub fn entry_skip(code: &[u8]) -> u64 {
    let Some(next) = code.strip_prefix(&ENDBR64) else {
        return 0;
    };
    // push %reg: 50+r, or 41 50+r for %r8..%r15, both of which the kernel emulates.
    let push = match next {
        [0x41, opcode, ..] | [opcode, ..] => (0x50..=0x57).contains(opcode),
        [] => false,
    };
    if push { ENDBR64.len() as u64 } else { 0 }
}

/// What the kernel does with the probed instruction each time the uprobe fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbedInstruction {
    /// x86-64 uprobes emulate a register push, a nop, and relative jumps and calls.
    Emulated,
    /// Any other instruction is copied out of line and single-stepped: a second trap per
    /// call, inside the span's duration. The instruction, as objdump shows it.
    SingleStepped(String),
}

/// How the kernel runs the first instruction of `code` (at `address`), or `None` when it
/// does not decode.
pub fn probed_instruction(code: &[u8], address: u64) -> Option<ProbedInstruction> {
    use iced_x86::{Decoder, DecoderOptions};
    let instruction = Decoder::with_ip(64, code, address, DecoderOptions::NONE).decode();
    if instruction.is_invalid() {
        return None;
    }
    Some(if crate::x86_64::prologue::emulated(&instruction) {
        ProbedInstruction::Emulated
    } else {
        ProbedInstruction::SingleStepped(objdump_text(&instruction))
    })
}

/// The first instruction of `code` (at `address`) as objdump writes it, with why the kernel
/// refuses a uprobe on it, when it does (see [`uprobe_insn`](crate::x86_64::uprobe_insn)).
pub fn refused_instruction(code: &[u8], address: u64) -> Option<(String, &'static str)> {
    let why = crate::x86_64::uprobe_insn::refusal(code)?;
    let instruction =
        iced_x86::Decoder::with_ip(64, code, address, iced_x86::DecoderOptions::NONE).decode();
    let text = if instruction.is_invalid() {
        format!("{:02x?}", &code[..code.len().min(4)])
    } else {
        objdump_text(&instruction)
    };
    Some((text, why))
}

/// Whether `offset` of `code` (which starts at a function's first instruction) is where an
/// instruction starts, decoding from the start; `None` when the bytes before it do not
/// decode.
pub fn starts_instruction(code: &[u8], offset: usize) -> Option<bool> {
    let mut decoder = iced_x86::Decoder::new(64, code, iced_x86::DecoderOptions::NONE);
    let mut at = 0;
    while at < offset {
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return None;
        }
        at += instruction.len();
    }
    Some(at == offset)
}

/// The instruction bytes of one ELF file, read at file offsets without loading the file.
#[derive(Debug)]
pub struct Code {
    file: File,
}

impl Code {
    /// Longest instruction prefix [`entry_skip`] looks at: `endbr64` and a two-byte push.
    const ENTRY_BYTES: usize = ENDBR64.len() + 2;

    pub fn open(path: &Path) -> Result<Self, ElfError> {
        File::open(path)
            .map(|file| Self { file })
            .map_err(|source| ElfError::Read {
                path: path.to_owned(),
                source,
            })
    }

    /// The instruction at file offset `offset` (virtual address `address`), as objdump
    /// shows it, when the kernel single-steps it (see [`probed_instruction`]).
    pub fn single_stepped(&self, offset: u64, address: u64) -> Option<String> {
        let mut code = [0u8; 15];
        let read = self.file.read_at(&mut code, offset).ok()?;
        match probed_instruction(&code[..read], address)? {
            ProbedInstruction::SingleStepped(text) => Some(text),
            ProbedInstruction::Emulated => None,
        }
    }

    /// The instruction at file offset `offset` (virtual address `address`) and why, when the
    /// kernel refuses to probe it.
    pub fn refused(&self, offset: u64, address: u64) -> Option<(String, &'static str)> {
        let mut code = [0u8; 15];
        let read = self.file.read_at(&mut code, offset).ok()?;
        refused_instruction(&code[..read], address)
    }

    /// The `len` bytes at file offset `offset`, or `None` when the file is shorter.
    pub fn bytes(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut code = vec![0u8; len];
        self.file.read_exact_at(&mut code, offset).ok()?;
        Some(code)
    }

    /// Where the probes of the function at file offset `offset` (virtual address `address`,
    /// `size` bytes long), reading the argument registers `read`, go past its first
    /// instructions, if anywhere (see
    /// [`probe_site`](crate::x86_64::prologue::probe_site)).
    pub fn probe_site(
        &self,
        offset: u64,
        address: Option<u64>,
        size: u64,
        read: crate::x86_64::prologue::ReadArguments,
    ) -> Result<crate::x86_64::prologue::ProbeSite, crate::x86_64::prologue::Stay> {
        use crate::x86_64::prologue::{Stay, probe_site};
        // Every branch of the function is read, to find one back into the prologue: a very
        // long function stays at its entry.
        const MOST: u64 = 256 << 10;
        if size > MOST {
            return Err(Stay::TooLong);
        }
        let code = usize::try_from(size)
            .ok()
            .and_then(|size| self.bytes(offset, size))
            .ok_or(Stay::Undecodable)?;
        probe_site(&code, address.unwrap_or(0), read)
    }

    /// [`entry_skip`] of the function at file offset `offset`; 0 if the bytes cannot be read
    /// (the probe then goes at the entry, where it is always correct).
    pub fn entry_skip(&self, offset: u64) -> u64 {
        let mut code = [0u8; Self::ENTRY_BYTES];
        match self.file.read_at(&mut code, offset) {
            Ok(read) => entry_skip(&code[..read]),
            Err(_) => 0,
        }
    }

    /// The function at file offset `offset` (virtual address `address`) probed past an
    /// `endbr64` onto the push after it ([`entry_skip`]), what a function of unknown length
    /// may be; `None` when it does not start so.
    pub fn past_endbr64(
        &self,
        offset: u64,
        address: u64,
    ) -> Option<crate::x86_64::prologue::ProbeSite> {
        let skip = self.entry_skip(offset);
        if skip == 0 {
            return None;
        }
        let mut code = [0u8; 15];
        let read = self.file.read_at(&mut code, offset + skip).ok()?;
        let onto = iced_x86::Decoder::with_ip(
            64,
            &code[..read],
            address + skip,
            iced_x86::DecoderOptions::NONE,
        )
        .decode();
        Some(crate::x86_64::prologue::ProbeSite {
            skip,
            moved_past: vec!["endbr64".to_owned()],
            onto: objdump_text(&onto),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_emulated_instructions_from_single_stepped_ones() {
        let stepped = |text: &str| Some(ProbedInstruction::SingleStepped(text.to_owned()));
        // push %rbp; push %r15; nop; nopl 0(%rax); jmp rel32; call rel32; je rel8
        for code in [
            &[0x55][..],
            &[0x41, 0x57],
            &[0x90],
            &[0x0f, 0x1f, 0x40, 0x00],
            &[0xe9, 0, 0, 0, 0],
            &[0xe8, 0, 0, 0, 0],
            &[0x74, 0x02],
        ] {
            assert_eq!(
                probed_instruction(code, 0x1000),
                Some(ProbedInstruction::Emulated),
                "{code:x?}"
            );
        }
        assert_eq!(probed_instruction(&ENDBR64, 0x1000), stepped("endbr64"));
        assert_eq!(
            probed_instruction(&[0x48, 0x8d, 0x04, 0x3f], 0x1000),
            stepped("lea (%rdi,%rdi),%rax")
        );
        assert_eq!(
            probed_instruction(&[0x48, 0x83, 0xec, 0x18], 0x1000),
            stepped("sub $0x18,%rsp")
        );
        assert_eq!(
            probed_instruction(&[0x48, 0x81, 0xec, 0xd8, 0, 0, 0], 0x1000),
            stepped("sub $0xd8,%rsp")
        );
        assert_eq!(probed_instruction(&[0x48], 0x1000), None);
        // RIP-relative, as objdump shows it: by displacement, not as an absolute load.
        assert_eq!(
            probed_instruction(&[0x80, 0x3d, 0xd8, 0xb5, 0x1d, 0x00, 0x00], 0xf82a0),
            stepped("cmpb $0,0x1db5d8(%rip)")
        );
    }

    #[test]
    fn tells_where_instructions_start() {
        // test %edi,%edi; js +0x24; cmp $0x11,%rdx
        let code = [0x85, 0xff, 0x78, 0x24, 0x48, 0x83, 0xfa, 0x11];
        let starts: Vec<usize> = (0..code.len())
            .filter(|&at| starts_instruction(&code, at) == Some(true))
            .collect();
        assert_eq!(starts, [0, 2, 4]);
        assert_eq!(starts_instruction(&[0x0f, 0x0b, 0x90], 3), Some(true));
    }

    #[test]
    fn skips_endbr64_only_before_a_push() {
        // endbr64; push %rbp
        assert_eq!(entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48]), 4);
        // endbr64; push %r15
        assert_eq!(entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x41, 0x57]), 4);
        // endbr64; lea (%rdi,%rdi,1),%rax: single-stepped either way, and may head a loop.
        assert_eq!(entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8d]), 0);
        // endbr64; mov %r8,%rax (REX.W+B, not a push)
        assert_eq!(entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x4c, 0x89]), 0);
        // endbr64 at the end of the file.
        assert_eq!(entry_skip(&ENDBR64), 0);
        // push %rbp: nothing to skip.
        assert_eq!(entry_skip(&[0x55, 0x48, 0x89, 0xe5, 0x53, 0x00]), 0);
        // endbr32 (f3 0f 1e fb) is not endbr64.
        assert_eq!(entry_skip(&[0xf3, 0x0f, 0x1e, 0xfb, 0x55, 0x48]), 0);
        assert_eq!(entry_skip(&[]), 0);
    }

    #[test]
    fn reads_entry_bytes_at_a_file_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code");
        std::fs::write(&path, [0x90, 0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0xc3]).unwrap();
        let code = Code::open(&path).unwrap();
        assert_eq!(code.entry_skip(1), 4);
        assert_eq!(code.entry_skip(0), 0);
        assert_eq!(code.entry_skip(100), 0);
        assert!(Code::open(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn reads_this_test_binary() {
        let info = ElfInfo::read(&std::env::current_exe().unwrap()).unwrap();
        assert!(!info.exec_segments.is_empty());
        assert!(!info.is_go);
        let segment = info.exec_segments[0];
        let offset = info.address_to_offset(segment.address + 16).unwrap();
        assert_eq!(offset, segment.offset + 16);
        assert!(info.offset_is_code(offset));
        assert_eq!(info.offset_to_address(offset), Some(segment.address + 16));
        assert_eq!(info.address_to_offset(u64::MAX - 1), None);
    }

    #[test]
    fn load_segments_map_addresses_and_offsets_both_ways() {
        let segments = LoadSegments(vec![
            ExecSegment {
                address: 0x40_0000,
                offset: 0,
                size: 0x1000,
            },
            ExecSegment {
                address: 0x40_2000,
                offset: 0x1000,
                size: 0x800,
            },
        ]);
        assert_eq!(segments.file_offset(0x40_2010), Some(0x1010));
        assert_eq!(segments.address(0x1010), Some(0x40_2010));
        assert_eq!(segments.file_offset(0x40_1000), None);
        assert_eq!(segments.address(0x1800), None);
    }

    #[test]
    fn refuses_non_elf_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.sh");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        let err = ElfInfo::read(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: not an ELF file", path.display())
        );
        let err = ElfInfo::read(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, ElfError::Read { .. }));
    }
}
