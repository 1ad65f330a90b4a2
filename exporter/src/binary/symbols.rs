//! The functions of a binary, by raw and demangled name, for matching config symbols (exact
//! or glob, see [`NamePattern`]) and for `spanprobe symbols`. A stripped binary's separate
//! debug file (see [`debug_file`]) adds the functions it does not export, static ones
//! included; a Go binary's `.gopclntab` names its Go functions, stripped or not, beside the C
//! functions of its ELF symbol tables (cgo, external linking).

use std::path::{Path, PathBuf};

use object::{Object as _, ObjectSymbol as _, SymbolKind, SymbolScope};

use crate::binary::{debug_file, elf::LoadSegments, gopclntab};

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
    /// Other objects can link against the name: a global or weak symbol that is not hidden
    /// (`read`, `__read`), not a local one (`__GI___read`, a static function).
    pub exported: bool,
    /// The table that names it.
    pub source: SymbolSource,
}

/// The table a function's name was read from. Ordered by preference: a name several tables
/// list at one address is said to come from the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymbolSource {
    /// The binary's static symbol table.
    Symtab,
    /// The static symbol table of its separate debug file.
    DebugFile,
    /// Its dynamic symbol table: what it exports.
    Dynsym,
    /// The Go runtime's own function table, which stripping keeps.
    Gopclntab,
}

impl SymbolSource {
    /// As `spanprobe symbols` and hints name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Symtab => ".symtab",
            Self::DebugFile => "debug file",
            Self::Dynsym => ".dynsym",
            Self::Gopclntab => ".gopclntab",
        }
    }
}

impl std::fmt::Display for SymbolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a binary's symbols cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    #[error("{}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an ELF file", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
}

/// Where a binary's function names come from besides its own `.dynsym`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NameSource {
    /// Its own static symbol table (`.symtab`): it is not stripped.
    #[default]
    OwnSymtab,
    /// The `.symtab` of its separate debug file.
    DebugFile(PathBuf),
    /// None: it is stripped and no debug file of its build was found, where its build-id
    /// (if it has one) says the file would be.
    Stripped { build_id_path: Option<PathBuf> },
}

/// Every function symbol of one binary (static and dynamic tables, its debug file's, and for
/// Go its `.gopclntab`), deduplicated by address and name. The aliases of one address are kept
/// together, the public one first (see [`alias_rank`]).
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    functions: Vec<FunctionSymbol>,
    names: NameSource,
    /// Indexes into `functions`, sorted by demangled name, then by raw name: an exact name is
    /// looked up, not searched for, as a config of thousands of entries needs.
    by_name: Vec<usize>,
    by_raw: Vec<usize>,
}

impl SymbolTable {
    pub fn read(path: &Path) -> Result<Self, SymbolsError> {
        let data = std::fs::read(path).map_err(|source| SymbolsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &data)
    }

    /// The table of the ELF file at `path`, whose contents are `data`.
    pub fn parse(path: &Path, data: &[u8]) -> Result<Self, SymbolsError> {
        let file = object::File::parse(data).map_err(|source| SymbolsError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let segments = LoadSegments::of(&file);
        // The ELF symbol tables, not DWARF: DWARF names lack their namespaces, and some
        // functions (e.g. a Rust binary's `main`) have no debug info.
        let mut read: Vec<FunctionSymbol> = file
            .symbols()
            .filter_map(|symbol| function(&symbol, &segments, SymbolSource::Symtab))
            .chain(
                file.dynamic_symbols()
                    .filter_map(|symbol| function(&symbol, &segments, SymbolSource::Dynsym)),
            )
            .collect();
        let names = if file.section_by_name(".symtab").is_some() {
            NameSource::OwnSymtab
        } else {
            let lookup = debug_file::find(path, &file);
            match lookup.found {
                Some(debug) => {
                    read.extend(debug_functions(&debug, &segments));
                    NameSource::DebugFile(debug.path)
                }
                None => NameSource::Stripped {
                    build_id_path: lookup.build_id_path,
                },
            }
        };
        // Whatever the ELF tables hold: a cgo or externally linked Go program exports C
        // functions (`crosscall2`, `_cgo_*`) from `.dynsym` while its Go code is named only in
        // `.gopclntab` once stripped.
        let go = go_functions(&file, &segments, &read);
        read.extend(go);
        Ok(Self::new(by_address(read), names))
    }

    fn new(functions: Vec<FunctionSymbol>, names: NameSource) -> Self {
        let sorted = |key: fn(&FunctionSymbol) -> &str| {
            let mut index: Vec<usize> = (0..functions.len()).collect();
            index.sort_by(|&a, &b| key(&functions[a]).cmp(key(&functions[b])));
            index
        };
        let by_name = sorted(|f| &f.name);
        let by_raw = sorted(|f| &f.raw);
        Self {
            functions,
            names,
            by_name,
            by_raw,
        }
    }

    pub fn functions(&self) -> &[FunctionSymbol] {
        &self.functions
    }

    /// Where the names came from besides the binary's dynamic symbols.
    pub fn names(&self) -> &NameSource {
        &self.names
    }

    /// One function per address, by its public name (see [`alias_rank`]).
    pub fn public(&self) -> impl Iterator<Item = &FunctionSymbol> {
        self.functions
            .chunk_by(|a, b| a.address == b.address)
            .filter_map(<[FunctionSymbol]>::first)
    }

    /// The other exported names of `function`'s address (weak and versioned aliases, such as
    /// `__read` beside `read`), which a program may link against as well.
    pub fn aliases<'a>(&'a self, function: &'a FunctionSymbol) -> impl Iterator<Item = &'a str> {
        self.at(function.address)
            .iter()
            .filter(move |other| other.name != function.name && other.exported)
            .map(|other| other.name.as_str())
    }

    /// Whether some function is named `name` verbatim, demangled or raw.
    pub fn has_name(&self, name: &str) -> bool {
        !self.named(name).is_empty()
    }

    /// The indexes of the functions named `name` verbatim, demangled or raw, in address order.
    fn named(&self, name: &str) -> Vec<usize> {
        let equal = |index: &[usize], key: fn(&FunctionSymbol) -> &str| {
            let start = index.partition_point(|&i| key(&self.functions[i]) < name);
            let len = index[start..].partition_point(|&i| key(&self.functions[i]) == name);
            index[start..start + len].to_vec()
        };
        let mut found = equal(&self.by_name, |f| &f.name);
        found.extend(equal(&self.by_raw, |f| &f.raw));
        found.sort_unstable();
        found.dedup();
        found
    }

    /// How `symbol`, a config's or a command line's, matches this binary's names (see
    /// [`NamePattern::of`]).
    pub fn pattern(&self, symbol: &str) -> NamePattern {
        NamePattern::of(symbol, |name| self.has_name(name))
    }

    /// Functions `pattern` names (see [`NamePattern`]). An exact name gives the functions of
    /// that name, as named; a glob gives every address where a demangled or raw name matches
    /// it, by that address's public name: `"*read"` on libc names `read`, not `__read`. One
    /// function per address either way: aliases share their code, and one probe fires for all.
    pub fn find(&self, pattern: &str) -> Vec<&FunctionSymbol> {
        let mut found: Vec<&FunctionSymbol> = match self.pattern(pattern) {
            NamePattern::Exact(name) => self
                .named(&name)
                .into_iter()
                .map(|i| &self.functions[i])
                .collect(),
            NamePattern::Glob(glob) => self
                .functions
                .iter()
                .filter(|f| glob.matches(&f.raw) || glob.matches(&f.name))
                .map(|f| &self.at(f.address)[0])
                .collect(),
        };
        found.dedup_by_key(|f| f.address);
        found
    }

    /// The aliases at `address`, public first; never empty for an address of a function.
    fn at(&self, address: u64) -> &[FunctionSymbol] {
        let start = self.functions.partition_point(|f| f.address < address);
        let len = self.functions[start..].partition_point(|f| f.address == address);
        &self.functions[start..start + len]
    }

    /// When the binary is stripped and no debug file of its build was found, why `symbol` may
    /// still be in it: a static function is named only in the `.symtab` the distribution moves
    /// to its debug package. Says which file to install, by the binary's build-id.
    pub fn missing_debug_file_hint(&self, path: &Path, symbol: &str) -> Option<String> {
        let NameSource::Stripped { build_id_path } = &self.names else {
            return None;
        };
        let looked = match build_id_path {
            Some(debug) => format!("no {}", debug.display()),
            None => "no build-id, no debug link found".to_owned(),
        };
        let package = match owning_package(path) {
            Some(package) => format!(
                "the debug package of `{package}` (`{package}-dbgsym` on Debian and Ubuntu, or \
                 a `-dbg` package)"
            ),
            None => "the distribution's debug package (`-dbgsym`, `-dbg` or `-debuginfo`)".into(),
        };
        // A Go binary's Go functions are all named by `.gopclntab`: only its C ones can hide.
        let (go, what) = if self.sources().contains(&SymbolSource::Gopclntab) {
            (
                "its Go functions are all named by its .gopclntab; ",
                "a static C function",
            )
        } else {
            ("", "a static function")
        };
        Some(format!(
            "the binary is stripped and its debug file is not installed ({looked}): {go}if \
             `{symbol}` is {what}, its name is only in that file, installed by {package}"
        ))
    }

    /// The `count` function names closest to `wanted`, best first, each with the table it
    /// is read from (`` `main.main` (.gopclntab) ``): in a stripped cgo program, C's `main`
    /// and Go's `main.main` come from different tables.
    pub fn closest(&self, wanted: &str, count: usize) -> Vec<String> {
        crate::suggest::closest(wanted, &self.functions, |f| f.name.as_str(), count)
            .into_iter()
            .map(|f| format!("`{}` ({})", f.name, f.source))
            .collect()
    }

    /// The tables its names come from, in [`SymbolSource`] order.
    pub fn sources(&self) -> Vec<SymbolSource> {
        let mut sources: Vec<SymbolSource> = self.functions.iter().map(|f| f.source).collect();
        sources.sort_unstable();
        sources.dedup();
        sources
    }
}

/// How a config `symbol` (or a pattern on the command line) names functions.
///
/// The rule: a name that some function has verbatim (demangled or raw) is that name, exact,
/// whatever characters it holds: Go's pointer methods `pkg.(*T).M` and instantiations
/// `pkg.Sum[go.shape.int_0]`, C++'s `Vec::operator[]` and `operator*`, Rust's
/// `<impl Trait for T>::m`. Otherwise a name with `*`, `?` or `[` is a glob (`[` opening a
/// character class; `[*]`, `[?]` and `[[]` match the character itself). `glob:` before a
/// pattern makes it a glob even where a function has that very name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// The functions of this name.
    Exact(String),
    /// The functions whose names match.
    Glob(glob::Pattern),
}

/// What makes a `symbol` a glob whatever names the binary has.
pub const GLOB_PREFIX: &str = "glob:";

impl NamePattern {
    /// `symbol` as a pattern, given whether a function has a name (`exists`): see the rule
    /// above. A malformed glob (`[` without `]`) is an exact name, which then names nothing.
    pub fn of(symbol: &str, exists: impl FnOnce(&str) -> bool) -> Self {
        if let Some(glob) = symbol.strip_prefix(GLOB_PREFIX) {
            return glob::Pattern::new(glob)
                .map_or_else(|_| Self::Exact(symbol.to_owned()), Self::Glob);
        }
        if exists(symbol) {
            return Self::Exact(symbol.to_owned());
        }
        glob_pattern(symbol).map_or_else(|| Self::Exact(symbol.to_owned()), Self::Glob)
    }

    pub fn is_glob(&self) -> bool {
        matches!(self, Self::Glob(_))
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Glob(glob) => glob.matches(name),
        }
    }
}

/// `symbol` (of table `source`) as a function to probe, if it is the entry of one.
fn function(
    symbol: &object::Symbol<'_, '_>,
    segments: &LoadSegments,
    source: SymbolSource,
) -> Option<FunctionSymbol> {
    // STT_FUNC and STT_GNU_IFUNC; defined here, at an address.
    if symbol.kind() != SymbolKind::Text || symbol.is_undefined() || symbol.address() == 0 {
        return None;
    }
    let raw = symbol.name().ok()?;
    if raw.is_empty() || is_cold_part(raw) {
        return None;
    }
    Some(FunctionSymbol {
        raw: raw.to_owned(),
        name: demangle(raw),
        address: symbol.address(),
        size: usize::try_from(symbol.size()).unwrap_or(0),
        file_offset: segments.file_offset(symbol.address()),
        exported: symbol.scope() == SymbolScope::Dynamic,
        source,
    })
}

/// The functions of a debug file's `.symtab` (its `.dynsym` is empty: `NOBITS`), placed in
/// the stripped binary by its `segments`.
fn debug_functions(found: &debug_file::DebugFile, segments: &LoadSegments) -> Vec<FunctionSymbol> {
    match object::File::parse(&*found.data) {
        Ok(file) => file
            .symbols()
            .filter_map(|symbol| function(&symbol, segments, SymbolSource::DebugFile))
            .collect(),
        Err(error) => {
            tracing::warn!(debug_file = %found.path.display(), %error, "debug file not read");
            Vec::new()
        }
    }
}

/// `functions` sorted by address, without repeats (a name in both `.symtab` and `.dynsym`),
/// each address's aliases in [`alias_rank`] order.
fn by_address(mut functions: Vec<FunctionSymbol>) -> Vec<FunctionSymbol> {
    // A name listed twice keeps its better standing (exported in one table, say), and the
    // first of its tables.
    functions.sort_by(|a, b| {
        (a.address, &a.raw, !a.exported, a.source).cmp(&(b.address, &b.raw, !b.exported, b.source))
    });
    functions.dedup_by(|a, b| a.address == b.address && a.raw == b.raw);
    functions.sort_by(|a, b| (a.address, alias_rank(a)).cmp(&(b.address, alias_rank(b))));
    functions
}

/// How public a name is among the aliases of one address, best (smallest) first; the best
/// names spans and listings. glibc defines most functions under several names (`read`,
/// `__read`, `__libc_read`, `__GI___read`), and a user knows the one programs call, so:
/// 1. an exported name (global or weak, not hidden) before a local one (`__GI___read`);
/// 2. fewer leading underscores (`read` before `__read`, `malloc` before `__libc_malloc`):
///    a leading underscore marks a name reserved to the implementation;
/// 3. a name without a symbol version (`memcpy@GLIBC_2.2.5`) before one with;
/// 4. the shorter, then the alphabetically first: a stable choice.
fn alias_rank(function: &FunctionSymbol) -> (bool, usize, bool, usize, &str) {
    let name = function.raw.as_str();
    (
        !function.exported,
        name.len() - name.trim_start_matches('_').len(),
        name.contains('@'),
        name.len(),
        name,
    )
}

/// The Go functions a Go binary's `.gopclntab` names (none for another binary) at addresses
/// no ELF symbol of `named` names, with their file offsets. An unstripped binary's `.symtab`
/// names every one already, and by the linker's names: an ABI wrapper is `f.abi0` there, where
/// `.gopclntab` has `f` at two addresses.
fn go_functions(
    file: &object::File<'_>,
    segments: &LoadSegments,
    named: &[FunctionSymbol],
) -> Vec<FunctionSymbol> {
    let Some(found) = gopclntab::of_file(file) else {
        return Vec::new();
    };
    let named: std::collections::HashSet<u64> = named.iter().map(|f| f.address).collect();
    found
        .into_iter()
        .filter(|function| !named.contains(&function.address))
        .map(|function| FunctionSymbol {
            name: function.name.clone(),
            raw: function.name,
            address: function.address,
            size: usize::try_from(function.size).unwrap_or(0),
            file_offset: segments.file_offset(function.address),
            // As the `.symtab` of an unstripped build has them: global, default visibility.
            exported: true,
            source: SymbolSource::Gopclntab,
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
    let needed = crate::binary::elf::needed_libraries(path);
    if !needed.is_empty() {
        why.push_str(&format!(
            "; the functions it calls may be in the libraries it loads: {}",
            needed.join(", ")
        ));
    }
    why.push_str("; its own code can be probed by `offset` or `address` (see `objdump -d`)");
    why
}

/// The Debian package that installed the file at `path`, if dpkg knows one (its debug
/// package is named after it).
fn owning_package(path: &Path) -> Option<String> {
    // dpkg records the path it unpacked (`/lib/...` on a merged-/usr system), so the path as
    // named comes first, then the real one.
    let real = path.canonicalize().ok();
    [Some(path.to_owned()), real]
        .into_iter()
        .flatten()
        .find_map(|path| {
            let output = std::process::Command::new("dpkg-query")
                .arg("--search")
                .arg(&path)
                .output()
                .ok()
                .filter(|output| output.status.success())?;
            // `python3.11-minimal: /usr/bin/python3.11`, or `libc6:amd64: /lib/.../libc.so.6`.
            let listing = String::from_utf8_lossy(&output.stdout);
            let (packages, _) = listing.lines().next()?.split_once(": ")?;
            let package = packages.split(", ").next()?;
            Some(package.split(':').next()?.to_owned())
        })
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

    fn symbol(raw: &str, address: u64, exported: bool) -> FunctionSymbol {
        FunctionSymbol {
            raw: raw.into(),
            name: demangle(raw),
            address,
            size: 8,
            file_offset: Some(address),
            exported,
            source: SymbolSource::Symtab,
        }
    }

    fn table() -> SymbolTable {
        let f = |raw: &str, address| symbol(raw, address, true);
        SymbolTable::new(
            by_address(vec![
                f("_ZN5myapp2db5users5queryEv", 0x10),
                f("_ZN5myapp2db6orders5queryEv", 0x20),
                f("_ZN5myapp2db6orders6insertEv", 0x30),
                f("plain_c", 0x40),
                f("plain_c_alias", 0x40),
            ]),
            NameSource::OwnSymtab,
        )
    }

    /// glibc's aliases, as its debug file lists them, in the order read.
    fn libc() -> SymbolTable {
        SymbolTable::new(
            by_address(vec![
                symbol("__GI___read", 0xf82a0, false),
                symbol("__libc_read", 0xf82a0, false),
                symbol("__read", 0xf82a0, true),
                symbol("read", 0xf82a0, true),
                // Listed by .dynsym too.
                symbol("read", 0xf82a0, true),
                symbol("__libc_malloc", 0x98930, true),
                symbol("malloc", 0x98930, true),
                symbol("__GI___libc_malloc", 0x98930, false),
                symbol("pthread_create@GLIBC_2.2.5", 0x89380, true),
                symbol("pthread_create", 0x89380, true),
                symbol("exec_simple_query", 0x1000, false),
            ]),
            NameSource::OwnSymtab,
        )
    }

    #[test]
    fn an_address_is_named_by_its_public_alias() {
        let libc = libc();
        let public: Vec<_> = libc.public().map(|f| f.name.as_str()).collect();
        assert_eq!(
            public,
            ["exec_simple_query", "pthread_create", "malloc", "read"]
        );
        let names =
            |pattern| -> Vec<&str> { libc.find(pattern).iter().map(|f| f.name.as_str()).collect() };
        // A glob names each address it matches once, by its public name.
        assert_eq!(names("__*"), ["malloc", "read"]);
        assert_eq!(names("*@GLIBC_2.2.5"), ["pthread_create"]);
        assert_eq!(names("*read"), ["read"]);
        // An exact name is the user's choice.
        assert_eq!(names("__read"), ["__read"]);
        assert_eq!(names("__GI___libc_malloc"), ["__GI___libc_malloc"]);
        let read = libc.find("read")[0];
        assert_eq!(libc.aliases(read).collect::<Vec<_>>(), ["__read"]);
        let malloc = libc.find("malloc")[0];
        assert_eq!(libc.aliases(malloc).collect::<Vec<_>>(), ["__libc_malloc"]);
    }

    #[test]
    fn a_missing_function_of_a_stripped_binary_hints_at_its_debug_file() {
        let mut table = libc();
        assert_eq!(
            table.missing_debug_file_hint(Path::new("/nonexistent/postgres"), "f"),
            None
        );
        table.names = NameSource::Stripped {
            build_id_path: Some(PathBuf::from("/usr/lib/debug/.build-id/ab/cdef.debug")),
        };
        assert_eq!(
            table
                .missing_debug_file_hint(Path::new("/nonexistent/postgres"), "exec_simple_query")
                .unwrap(),
            "the binary is stripped and its debug file is not installed (no \
             /usr/lib/debug/.build-id/ab/cdef.debug): if `exec_simple_query` is a static \
             function, its name is only in that file, installed by the distribution's debug \
             package (`-dbgsym`, `-dbg` or `-debuginfo`)"
        );
        table.names = NameSource::DebugFile(PathBuf::from("/usr/lib/debug/x.debug"));
        assert_eq!(
            table.missing_debug_file_hint(Path::new("/bin/sh"), "f"),
            None
        );
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
    fn suggests_close_names_with_their_table() {
        assert_eq!(
            table().closest("plain_d", 3),
            ["`plain_c` (.symtab)", "`plain_c_alias` (.symtab)"]
        );
    }

    /// Names as Go, C++ and Rust write them, with the characters of globs in them.
    fn languages() -> SymbolTable {
        let f = |raw: &str, address| symbol(raw, address, true);
        SymbolTable::new(
            by_address(vec![
                f("main.(*order).apply", 0x10),
                f("main.(*queue).apply", 0x20),
                f("main.(*order).cancel", 0x30),
                f("main.Sum[go.shape.int_0]", 0x40),
                f("main.Sum[go.shape.float64_0]", 0x50),
                // myapp::Vec::operator[](unsigned long), operator*()
                f("_ZN5myapp3VecixEm", 0x60),
                f("_ZN5myapp3VecmlEv", 0x70),
                f("_ZN5myapp3VecmlERKS0_", 0x78),
                f("<myapp::Order as core::fmt::Debug>::fmt", 0x80),
                f("<myapp::Line as core::fmt::Debug>::fmt", 0x90),
            ]),
            NameSource::OwnSymtab,
        )
    }

    #[test]
    fn a_name_that_exists_verbatim_is_exact_whatever_its_characters() {
        let table = languages();
        let addresses =
            |pattern| -> Vec<u64> { table.find(pattern).iter().map(|f| f.address).collect() };
        assert_eq!(addresses("main.(*order).apply"), [0x10]);
        assert_eq!(addresses("main.Sum[go.shape.int_0]"), [0x40]);
        assert_eq!(addresses("myapp::Vec::operator[]"), [0x60]);
        // Overloads share a demangled name: each is the exact name's.
        assert_eq!(addresses("myapp::Vec::operator*"), [0x70, 0x78]);
        assert_eq!(addresses("<myapp::Order as core::fmt::Debug>::fmt"), [0x80]);
        assert!(!table.pattern("main.(*order).apply").is_glob());
        // What no function is named is a glob, if it has a glob's characters.
        assert_eq!(addresses("main.(*order).*"), [0x10, 0x30]);
        assert_eq!(addresses("main.(*).apply"), [0x10, 0x20]);
        assert_eq!(addresses("main.Sum[[]*"), [0x40, 0x50]);
        assert_eq!(
            addresses("<myapp::* as core::fmt::Debug>::fmt"),
            [0x80, 0x90]
        );
        // `glob:` makes a glob of a name that exists: its `*` then matches any type.
        assert_eq!(addresses("glob:main.(*order).apply"), [0x10]);
        assert_eq!(addresses("glob:main.(*).apply"), [0x10, 0x20]);
        assert!(table.pattern("glob:main.(*order).apply").is_glob());
        assert!(addresses("main.Sum[go.shape.uint8_0]").is_empty());
        assert_eq!(
            NamePattern::of("main.Sum[", |_| false),
            NamePattern::Exact("main.Sum[".into())
        );
    }

    #[test]
    fn reads_a_real_binary() {
        let table = SymbolTable::read(&std::env::current_exe().unwrap()).unwrap();
        let main = table.find("main");
        assert_eq!(main.len(), 1);
        assert!(main[0].file_offset.is_some());
    }
}
