//! What spanprobe needs to know about an ELF file before probing it: that it is an x86-64
//! ELF, where its executable code is in the file, and whether it is a Go binary.

use std::path::{Path, PathBuf};

use object::{Architecture, Object as _, ObjectSegment as _, SegmentFlags, elf::PF_X};

/// A loadable, executable segment: file bytes `offset..offset + size` map to virtual
/// addresses `address..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecSegment {
    pub address: u64,
    pub offset: u64,
    pub size: u64,
}

/// The facts about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub exec_segments: Vec<ExecSegment>,
    /// Built by the Go toolchain: uretprobes corrupt Go stacks (Go moves goroutine stacks).
    pub is_go: bool,
    /// Has a static symbol table (`.symtab`); stripped binaries have only `.dynsym`, if that.
    pub has_symtab: bool,
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
        let data = std::fs::read(path).map_err(|source| ElfError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = object::File::parse(&*data)
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
            .map(|s| {
                let (offset, size) = s.file_range();
                ExecSegment {
                    address: s.address(),
                    offset,
                    size,
                }
            })
            .collect();
        let is_go = file.section_by_name(".go.buildinfo").is_some()
            || file.section_by_name(".note.go.buildid").is_some()
            || file.section_by_name(".gopclntab").is_some();
        let has_symtab = file.section_by_name(".symtab").is_some();
        Ok(Self {
            exec_segments,
            is_go,
            has_symtab,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
