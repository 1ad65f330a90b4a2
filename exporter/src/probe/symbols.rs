//! The functions of a binary, by raw and demangled name, for matching config symbols (exact
//! or glob) and for `spanprobe symbols`.

use std::{ops::ControlFlow, path::Path};

use crate::probe::gopclntab;
use blazesym::{
    SymType,
    inspect::{Inspector, source::Elf},
};

/// One function in a binary's symbol tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSymbol {
    /// As in the symbol table (possibly mangled).
    pub raw: String,
    /// Demangled (C++, Rust legacy and v0, without Rust's hash), without a C++ parameter list.
    pub name: String,
    pub address: u64,
    pub size: usize,
    pub file_offset: Option<u64>,
}

/// Every function symbol of one binary (static and dynamic tables), deduplicated by address
/// and name.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    functions: Vec<FunctionSymbol>,
}

impl SymbolTable {
    pub fn read(path: &Path) -> Result<Self, blazesym::Error> {
        let inspector = Inspector::new();
        let mut functions = Vec::new();
        // The ELF symbol tables, not DWARF: DWARF names lack their namespaces, and some
        // functions (e.g. a Rust binary's `main`) have no debug info.
        let mut elf = Elf::new(path);
        elf.debug_syms = false;
        inspector.for_each(&elf.into(), |sym| {
            if sym.sym_type == SymType::Function && sym.addr != 0 && !is_cold_part(&sym.name) {
                functions.push(FunctionSymbol {
                    raw: sym.name.to_string(),
                    name: demangle(&sym.name),
                    address: sym.addr,
                    size: sym.size.unwrap_or(0),
                    file_offset: sym.file_offset,
                });
            }
            ControlFlow::Continue(())
        })?;
        if functions.is_empty() {
            functions = go_functions(path);
        }
        functions.sort_by(|a, b| (a.address, &a.raw).cmp(&(b.address, &b.raw)));
        functions.dedup_by(|a, b| a.address == b.address && a.raw == b.raw);
        Ok(Self { functions })
    }

    pub fn functions(&self) -> &[FunctionSymbol] {
        &self.functions
    }

    /// Functions `pattern` names: by raw or demangled name, or, if it has glob characters
    /// (`*`, `?`, `[`), every function whose demangled or raw name matches it.
    pub fn find(&self, pattern: &str) -> Vec<&FunctionSymbol> {
        let matches: Box<dyn Fn(&str) -> bool> = match glob_pattern(pattern) {
            Some(glob) => Box::new(move |name| glob.matches(name)),
            None => Box::new(|name| name == pattern),
        };
        let mut found: Vec<&FunctionSymbol> = self
            .functions
            .iter()
            .filter(|f| matches(&f.raw) || matches(&f.name))
            .collect();
        // One probe per address: aliases (e.g. a symbol and its versioned twin) share code.
        found.dedup_by_key(|f| f.address);
        found
    }

    /// The `count` function names closest to `wanted`, best first.
    pub fn closest(&self, wanted: &str, count: usize) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .functions
            .iter()
            .map(|f| (strsim::jaro_winkler(wanted, &f.name), f.name.as_str()))
            .filter(|(score, _)| *score > 0.7)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored.dedup_by(|a, b| a.1 == b.1);
        scored
            .into_iter()
            .take(count)
            .map(|(_, name)| name.to_owned())
            .collect()
    }
}

/// The functions a stripped Go binary's `.gopclntab` names (none for another binary), with
/// their file offsets.
fn go_functions(path: &Path) -> Vec<FunctionSymbol> {
    use object::{Object as _, ObjectSegment as _};
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let Some(file) = object::File::parse(&*data).ok() else {
        return Vec::new();
    };
    let Some(found) = gopclntab::of_file(&file) else {
        return Vec::new();
    };
    let segments: Vec<(u64, u64, u64)> = file
        .segments()
        .map(|s| (s.address(), s.size(), s.file_range().0))
        .collect();
    let file_offset = |address: u64| {
        segments
            .iter()
            .find(|(start, size, _)| (*start..start + size).contains(&address))
            .map(|(start, _, offset)| offset + (address - start))
    };
    found
        .into_iter()
        .map(|function| FunctionSymbol {
            name: function.name.clone(),
            raw: function.name,
            address: function.address,
            size: usize::try_from(function.size).unwrap_or(0),
            file_offset: file_offset(function.address),
        })
        .collect()
}

/// GCC splits rarely run code of a function into `name.cold`: a symbol of type function that
/// is jumped to, never called, so it is no place for a uprobe.
fn is_cold_part(raw: &str) -> bool {
    raw.ends_with(".cold") || raw.contains(".cold.")
}

/// Why a binary whose symbol tables hold no function gives nothing to probe by name, and what
/// to do instead.
pub fn why_no_functions(path: &Path, has_symtab: bool) -> String {
    let mut why = if has_symtab {
        "has no function symbols".to_owned()
    } else {
        "is stripped (no .symtab) and exports no function (.dynsym)".to_owned()
    };
    let needed = crate::probe::elf::needed_libraries(path);
    if !needed.is_empty() {
        why.push_str(&format!(
            "; the functions it calls may be in the libraries it loads: {}",
            needed.join(", ")
        ));
    }
    why.push_str("; its own code can be probed by `offset` or `address` (see `objdump -d`)");
    why
}

/// A compiled glob, if `pattern` is one.
pub fn glob_pattern(pattern: &str) -> Option<glob::Pattern> {
    if pattern.contains(['*', '?', '[']) {
        glob::Pattern::new(pattern).ok()
    } else {
        None
    }
}

/// The readable name of a symbol: Rust (without the hash, which changes every build) or C++
/// (without the parameter list), else the name itself.
pub fn demangle(raw: &str) -> String {
    if let Ok(rust) = rustc_demangle::try_demangle(raw) {
        return format!("{rust:#}");
    }
    if raw.starts_with("_Z")
        && let Ok(symbol) = cpp_demangle::Symbol::new(raw)
    {
        let options = cpp_demangle::DemangleOptions::new()
            .no_params()
            .no_return_type();
        if let Ok(name) = symbol.demangle_with_options(&options) {
            return name;
        }
    }
    raw.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_rust_and_cpp() {
        // Legacy Rust mangling, with its hash.
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        // v0 Rust mangling.
        assert_eq!(demangle("_RNvCs1234_7mycrate3foo"), "mycrate::foo");
        // C++ with parameters.
        assert_eq!(
            demangle("_ZN5myapp2db5Query3runEPKci"),
            "myapp::db::Query::run"
        );
        assert_eq!(demangle("two_ints_and_return"), "two_ints_and_return");
    }

    fn table() -> SymbolTable {
        let f = |raw: &str, address| FunctionSymbol {
            raw: raw.into(),
            name: demangle(raw),
            address,
            size: 8,
            file_offset: Some(address),
        };
        SymbolTable {
            functions: vec![
                f("_ZN5myapp2db5users5queryEv", 0x10),
                f("_ZN5myapp2db6orders5queryEv", 0x20),
                f("_ZN5myapp2db6orders6insertEv", 0x30),
                f("plain_c", 0x40),
                f("plain_c_alias", 0x40),
            ],
        }
    }

    #[test]
    fn finds_by_raw_demangled_or_glob() {
        let table = table();
        let names = |pattern| {
            table
                .find(pattern)
                .iter()
                .map(|f| f.address)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("_ZN5myapp2db5users5queryEv"), [0x10]);
        assert_eq!(names("myapp::db::users::query"), [0x10]);
        assert_eq!(names("myapp::db::*::query"), [0x10, 0x20]);
        assert_eq!(names("myapp::db::orders::*"), [0x20, 0x30]);
        // Aliases at one address are probed once.
        assert_eq!(names("plain_c*"), [0x40]);
        assert!(names("nothing").is_empty());
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(table().closest("plain_d", 3), ["plain_c", "plain_c_alias"]);
    }

    #[test]
    fn reads_a_real_binary() {
        let table = SymbolTable::read(&std::env::current_exe().unwrap()).unwrap();
        let main = table.find("main");
        assert_eq!(main.len(), 1);
        assert!(main[0].file_offset.is_some());
    }
}
