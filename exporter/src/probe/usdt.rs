//! Statically defined probes (USDT, `sys/sdt.h`): the `.note.stapsdt` notes a binary carries,
//! one per probe site, each with its provider, name, address, optional semaphore and the
//! assembler operands of its arguments (`-4@%eax`, `8@-80(%rbx)`, `8@$5`).

use std::{fmt, path::Path};

use object::{
    Endianness, Object as _, ObjectSection as _,
    elf::{SHT_NOBITS, SHT_NOTE},
    read::elf::{ElfFile64, ElfSection64, SectionHeader as _},
};

/// The note type of a SystemTap probe (`NT_STAPSDT`).
const NT_STAPSDT: u32 = 3;

/// One probe site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsdtProbe {
    pub provider: String,
    pub name: String,
    /// Virtual address of the probe's `nop`.
    pub address: u64,
    /// Where that `nop` is in the file: where the uprobe goes.
    pub file_offset: u64,
    /// The semaphore's virtual address and file offset, for a probe guarded by one (its
    /// arguments are only computed while the semaphore is non-zero).
    pub semaphore: Option<(u64, u64)>,
    /// The argument operands as the note has them, in order.
    pub args: Vec<String>,
}

impl UsdtProbe {
    /// `provider:name`, as configs name it.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.provider, self.name)
    }
}

/// Why the probes of a binary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsdtError {
    #[error("cannot read {}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an x86-64 ELF file", path.display())]
    NotElf {
        path: std::path::PathBuf,
        source: object::Error,
    },
    #[error("{}: malformed USDT note: {reason}", path.display())]
    Malformed {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Every USDT probe site of the ELF file at `path`, in note order; empty when it has none.
pub fn read_probes(path: &Path) -> Result<Vec<UsdtProbe>, UsdtError> {
    let data = std::fs::read(path).map_err(|source| UsdtError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file = ElfFile64::<Endianness>::parse(&*data).map_err(|source| UsdtError::NotElf {
        path: path.to_owned(),
        source,
    })?;
    let malformed = |reason: String| UsdtError::Malformed {
        path: path.to_owned(),
        reason,
    };
    // The address `.stapsdt.base` had when the notes were written; a prelinked file moved it.
    let base = file.section_by_name(".stapsdt.base").map(|s| s.address());
    let endian = file.endian();
    let mut probes = Vec::new();
    for section in file.sections() {
        if section.elf_section_header().sh_type.get(endian) != SHT_NOTE {
            continue;
        }
        let Ok(Some(mut notes)) = section.elf_section_header().notes(endian, file.data()) else {
            continue;
        };
        while let Some(note) = notes.next().map_err(|e| malformed(e.to_string()))? {
            if note.name() != b"stapsdt" || note.n_type(endian) != NT_STAPSDT {
                continue;
            }
            let probe = parse_note(note.desc(), base, &file).map_err(&malformed)?;
            probes.push(probe);
        }
    }
    Ok(probes)
}

/// One note's description: three addresses (the probe, `.stapsdt.base` when written, the
/// semaphore), then the provider, the name and the arguments, each NUL-terminated.
fn parse_note(
    desc: &[u8],
    base: Option<u64>,
    file: &ElfFile64<'_, Endianness>,
) -> Result<UsdtProbe, String> {
    let word = |i: usize| -> Result<u64, String> {
        let bytes = desc
            .get(8 * i..8 * i + 8)
            .ok_or_else(|| "a note shorter than its three addresses".to_owned())?;
        Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| "short")?))
    };
    let (mut address, note_base, mut semaphore) = (word(0)?, word(1)?, word(2)?);
    if let Some(base) = base {
        address = address.wrapping_add(base).wrapping_sub(note_base);
        if semaphore != 0 {
            semaphore = semaphore.wrapping_add(base).wrapping_sub(note_base);
        }
    }
    let mut strings = desc[24..].split(|&b| b == 0);
    let mut text = |what: &str| -> Result<String, String> {
        let bytes = strings
            .next()
            .ok_or_else(|| format!("a note without its {what}"))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("a {what} that is not UTF-8"))
    };
    let provider = text("provider")?;
    let name = text("name")?;
    let args = text("arguments").unwrap_or_default();
    let probe_offset = file_offset(file, address)
        .ok_or_else(|| format!("probe {provider}:{name} at {address:#x} is in no section"))?;
    let semaphore = match semaphore {
        0 => None,
        address => Some((
            address,
            file_offset(file, address).ok_or_else(|| {
                format!("the semaphore of {provider}:{name} at {address:#x} is in no section")
            })?,
        )),
    };
    Ok(UsdtProbe {
        provider,
        name,
        address,
        file_offset: probe_offset,
        semaphore,
        args: args.split_whitespace().map(str::to_owned).collect(),
    })
}

/// Where the byte at virtual `address` is in the file: through the section holding it.
fn file_offset(file: &ElfFile64<'_, Endianness>, address: u64) -> Option<u64> {
    let endian = file.endian();
    file.sections()
        .find_map(|section: ElfSection64<'_, '_, Endianness>| {
            let header = section.elf_section_header();
            let start = section.address();
            let in_file = header.sh_type.get(endian) != SHT_NOBITS;
            (in_file && start != 0 && (start..start + section.size()).contains(&address))
                .then(|| address - start + header.sh_offset.get(endian))
        })
}

/// A general-purpose register, as an operand names it (`%rax`, `%eax`, `%ax`, `%al`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Register {
    Rax,
    Rdx,
    Rcx,
    Rbx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Register {
    /// In the kernel side's numbering (the DWARF register numbers of x86-64).
    pub const ALL: [Register; 16] = [
        Self::Rax,
        Self::Rdx,
        Self::Rcx,
        Self::Rbx,
        Self::Rsi,
        Self::Rdi,
        Self::Rbp,
        Self::Rsp,
        Self::R8,
        Self::R9,
        Self::R10,
        Self::R11,
        Self::R12,
        Self::R13,
        Self::R14,
        Self::R15,
    ];

    /// The register any of its names (64, 32, 16 or 8 bits) refers to.
    fn from_name(name: &str) -> Option<Register> {
        let legacy = [
            ("ax", Self::Rax),
            ("dx", Self::Rdx),
            ("cx", Self::Rcx),
            ("bx", Self::Rbx),
            ("si", Self::Rsi),
            ("di", Self::Rdi),
            ("bp", Self::Rbp),
            ("sp", Self::Rsp),
        ];
        for (core, register) in legacy {
            let low8 = match core {
                "ax" | "dx" | "cx" | "bx" => format!("{}l", &core[..1]),
                _ => format!("{core}l"),
            };
            if [
                format!("r{core}"),
                format!("e{core}"),
                core.to_owned(),
                low8,
            ]
            .contains(&name.to_owned())
            {
                return Some(register);
            }
        }
        let number = name.strip_prefix('r')?;
        let digits = number.trim_end_matches(['d', 'w', 'b']);
        let n: usize = digits.parse().ok()?;
        (8..=15).contains(&n).then(|| Self::ALL[n])
    }

    /// The kernel side's number for it.
    pub fn number(self) -> u8 {
        Self::ALL.iter().position(|&r| r == self).unwrap_or(0) as u8
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = format!("{self:?}").to_uppercase();
        f.write_str(&name)
    }
}

/// Where an argument's value is when the probe fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Register(Register),
    /// `offset(%base)`: in memory.
    Memory {
        base: Register,
        offset: i32,
    },
    /// `$value`: the same at every firing.
    Constant(i64),
}

/// One argument as a note describes it: its size in bytes, whether it is signed, and where
/// it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsdtArg {
    pub size: u8,
    pub signed: bool,
    pub operand: Operand,
}

impl UsdtArg {
    /// Stands for an argument that is never read (one that cannot be, or a parameter no
    /// capture asks for): resolution refuses captures of it.
    pub const UNREAD: UsdtArg = UsdtArg {
        size: 8,
        signed: false,
        operand: Operand::Constant(0),
    };

    /// Parses `SIZE@OPERAND` as `sys/sdt.h` writes it for x86-64 (`-4@%eax`, `8@-80(%rbx)`,
    /// `8@$5`, `4@(%rdi)`); an indexed or symbolic operand is refused with the reason.
    pub fn parse(spec: &str) -> Result<UsdtArg, String> {
        let (size, operand) = spec
            .split_once('@')
            .ok_or_else(|| format!("`{spec}` has no `SIZE@` prefix"))?;
        let size: i8 = size
            .parse()
            .map_err(|_| format!("`{spec}`: `{size}` is not a size"))?;
        if ![1, 2, 4, 8].contains(&size.unsigned_abs()) {
            return Err(format!(
                "`{spec}`: {size} is not a size of 1, 2, 4 or 8 bytes"
            ));
        }
        let register = |name: &str| {
            name.strip_prefix('%')
                .and_then(Register::from_name)
                .ok_or_else(|| format!("`{spec}`: `{name}` is not a general-purpose register"))
        };
        let operand = if let Some(value) = operand.strip_prefix('$') {
            let value = parse_int(value).ok_or_else(|| {
                format!("`{spec}`: `{value}` is not a number (a symbol's address is not read)")
            })?;
            Operand::Constant(value)
        } else if operand.starts_with('%') {
            Operand::Register(register(operand)?)
        } else if let Some((offset, rest)) = operand.split_once('(') {
            let base = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("`{spec}`: `(` without `)`"))?;
            if base.contains(',') {
                return Err(format!("`{spec}`: an indexed memory operand is not read"));
            }
            let offset = if offset.is_empty() {
                0
            } else {
                parse_int(offset)
                    .and_then(|o| i32::try_from(o).ok())
                    .ok_or_else(|| {
                        format!("`{spec}`: `{offset}` is not an offset (a symbol is not read)")
                    })?
            };
            Operand::Memory {
                base: register(base)?,
                offset,
            }
        } else {
            return Err(format!(
                "`{spec}`: `{operand}` is not an operand spanprobe reads"
            ));
        };
        Ok(UsdtArg {
            size: size.unsigned_abs(),
            signed: size < 0,
            operand,
        })
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Register(register) => write!(f, "{register}"),
            Self::Memory { base, offset } => write!(f, "[{base}{offset:+}]"),
            Self::Constant(value) => write!(f, "constant {value}"),
        }
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = match digits.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_operands_sdt_h_writes() {
        let arg = |spec| UsdtArg::parse(spec).unwrap();
        assert_eq!(
            arg("-4@%eax"),
            UsdtArg {
                size: 4,
                signed: true,
                operand: Operand::Register(Register::Rax)
            }
        );
        assert_eq!(arg("8@%r14").operand, Operand::Register(Register::R14));
        assert_eq!(arg("1@%r9b").operand, Operand::Register(Register::R9));
        assert_eq!(arg("2@%si").operand, Operand::Register(Register::Rsi));
        assert_eq!(arg("1@%dil").operand, Operand::Register(Register::Rdi));
        assert_eq!(arg("1@%bl").operand, Operand::Register(Register::Rbx));
        assert_eq!(
            arg("8@-80(%rbx)").operand,
            Operand::Memory {
                base: Register::Rbx,
                offset: -80
            }
        );
        assert_eq!(
            arg("4@(%rdi)").operand,
            Operand::Memory {
                base: Register::Rdi,
                offset: 0
            }
        );
        assert_eq!(arg("-8@$-5").operand, Operand::Constant(-5));
        assert_eq!(arg("8@$0x10").operand, Operand::Constant(16));
        assert!(!arg("8@%rdx").signed);
        for (spec, reason) in [
            ("8@(%rax,%rdx,8)", "indexed"),
            ("8@%xmm0", "not a general-purpose register"),
            ("3@%rax", "not a size"),
            ("%rax", "no `SIZE@`"),
            ("8@$sym", "not a number"),
            ("8@sym(%rip)", "not an offset"),
        ] {
            let error = UsdtArg::parse(spec).unwrap_err();
            assert!(error.contains(reason), "{spec}: {error}");
        }
        assert_eq!(Register::R14.number(), 14);
        assert_eq!(Register::Rdi.to_string(), "RDI");
    }
}
