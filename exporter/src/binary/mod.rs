//! Reading binaries: finding the file a target names ([`locate`]), its ELF layout and code
//! ([`elf`], and whether the code keeps frame pointers, [`frame_pointers`]), its function symbols ([`symbols`], with Go's own table in [`gopclntab`]), its
//! DWARF ([`dwarf`], in the file or in a separate debug file found by [`debug_file`]) and its
//! USDT notes ([`usdt`]); [`Binary`] parses each once per run, for every probe in it.

pub mod debug_file;
pub mod dwarf;
pub mod elf;
pub mod frame_pointers;
pub mod gopclntab;
pub mod locate;
pub mod symbols;
pub mod usdt;

use std::{cell::OnceCell, collections::HashMap, path::PathBuf, sync::Arc};

use dwarf::{DwarfError, DwarfFile, FunctionSignature, go::GoFunctions, path::PathError};
use elf::{Code, ElfInfo};
use symbols::{SymbolTable, SymbolsError};

/// A binary, read once for all the probes in it: its bytes, and what is parsed from them
/// (symbols, DWARF) the first time a probe needs it, so that a config of thousands of entries
/// reads and parses the file once, as one glob does.
pub struct Binary {
    pub path: PathBuf,
    pub elf: ElfInfo,
    pub code: Code,
    /// The file's contents, read once.
    data: Vec<u8>,
    symbols: OnceCell<Result<SymbolTable, Arc<SymbolsError>>>,
    /// For a Go binary: its functions' parameters from DWARF.
    go: OnceCell<Result<GoFunctions, Arc<DwarfError>>>,
    /// Its DWARF (or its debug file's); `Ok(None)` without any.
    dwarf: OnceCell<Result<Option<DwarfFile>, Arc<DwarfError>>>,
    /// What DWARF says of each function, by symbol (linkage name, else name); empty without
    /// DWARF.
    signatures: OnceCell<HashMap<String, FunctionSignature>>,
}

impl Binary {
    /// The binary at `path`, whose contents are `data`, its ELF facts `elf` and its code
    /// `code` (parsed from them already).
    pub fn new(path: PathBuf, data: Vec<u8>, elf: ElfInfo, code: Code) -> Self {
        Binary {
            path,
            elf,
            code,
            data,
            symbols: OnceCell::new(),
            go: OnceCell::new(),
            dwarf: OnceCell::new(),
            signatures: OnceCell::new(),
        }
    }

    /// The binary's function symbols, parsed the first time they are asked for.
    pub fn symbols(&self) -> Result<&SymbolTable, Arc<SymbolsError>> {
        self.symbols
            .get_or_init(|| SymbolTable::parse(&self.path, &self.data).map_err(Arc::new))
            .as_ref()
            .map_err(Arc::clone)
    }

    /// What the DWARF of this Go binary says of its functions; empty without DWARF.
    pub fn go_functions(&self) -> Result<&GoFunctions, Arc<DwarfError>> {
        self.go
            .get_or_init(|| match self.dwarf()? {
                Some(dwarf) => dwarf::go::functions_in(dwarf, None).map_err(Arc::new),
                None => Ok(GoFunctions::default()),
            })
            .as_ref()
            .map_err(Arc::clone)
    }

    /// The binary's DWARF (or its debug file's); `Ok(None)` without any.
    pub fn dwarf(&self) -> Result<Option<&DwarfFile>, Arc<DwarfError>> {
        self.dwarf
            .get_or_init(|| DwarfFile::load(&self.path, &self.data).map_err(Arc::new))
            .as_ref()
            .map(Option::as_ref)
            .map_err(Arc::clone)
    }

    /// The chains of `requests` from the parameters of the function of symbol `raw`, from the
    /// binary's DWARF (see [`dwarf::path::chains_in`]); the outer error concerns them all.
    pub fn path_chains(
        &self,
        raw: &str,
        requests: &[dwarf::path::PathRequest<'_>],
    ) -> Result<Vec<Result<dwarf::path::FieldChain, PathError>>, PathError> {
        let dwarf = self.dwarf().map_err(PathError::Dwarf)?;
        dwarf::path::chains_in(dwarf.ok_or(PathError::NoDebugInfo)?, raw, requests)
    }

    /// What DWARF says of the function of symbol `raw`; `None` without DWARF, or without that
    /// function in it (what it gives is optional).
    pub fn signature(&self, raw: &str) -> Option<&FunctionSignature> {
        self.signatures
            .get_or_init(|| {
                let Ok(Some(dwarf)) = self.dwarf() else {
                    return HashMap::new();
                };
                dwarf
                    .signatures()
                    .unwrap_or_default()
                    .into_values()
                    .map(|s| (s.linkage_name.clone().unwrap_or_else(|| s.name.clone()), s))
                    .collect()
            })
            .get(raw)
    }
}
