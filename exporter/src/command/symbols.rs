//! `spanprobe symbols`: the functions of a binary that can be probed, to help write a config.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;

use crate::{binary, symbols::SymbolTable};

/// Lists the functions of `binary` (a path or a bare library name) whose demangled or raw
/// name matches the glob `pattern` (all when absent): name, address, size.
pub fn list(binary: &str, pattern: Option<&str>) -> anyhow::Result<String> {
    let path = binary::locate(binary, Path::new("."))?;
    let table = SymbolTable::read(&path)
        .with_context(|| format!("{}: cannot read symbols", path.display()))?;
    let mut functions: Vec<_> = match pattern {
        Some(pattern) => table.find(pattern),
        None => table.functions().iter().collect(),
    };
    functions.sort_by(|a, b| a.name.cmp(&b.name).then(a.address.cmp(&b.address)));
    let mut out = String::new();
    for function in functions {
        let _ = write!(
            out,
            "{:#014x} {:>7} {}",
            function.address, function.size, function.name
        );
        if function.name != function.raw {
            let _ = write!(out, "  [{}]", function.raw);
        }
        out.push('\n');
    }
    Ok(out)
}
