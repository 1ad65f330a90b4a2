//! Statically defined probes (USDT, `sys/sdt.h`): the `.note.stapsdt` notes a binary carries,
//! one per probe site, each with its provider, name, address, optional semaphore and the
//! assembler operands of its arguments (`-4@%eax`, `8@-80(%rbx)`, `8@$5`).

use std::path::Path;

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
