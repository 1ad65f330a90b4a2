//! `spanprobe symbols`: the functions of a binary that can be probed, to help write a config.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;

use crate::binary::{
    elf::ElfInfo,
    locate,
    symbols::{SymbolTable, why_no_functions},
};

/// The functions of the binary a command line names (a path, a program in PATH or a library
/// name), or why there are none.
pub fn read_table(binary: &str) -> anyhow::Result<(std::path::PathBuf, ElfInfo, SymbolTable)> {
    let path = locate::locate_from_command_line(binary)?;
    // Says "not an ELF file", or which architecture, before the symbol reader would.
    let elf = ElfInfo::read(&path)?;
    let table = SymbolTable::read(&path)
        .with_context(|| format!("{}: cannot read symbols", path.display()))?;
    if table.functions().is_empty() {
        anyhow::bail!(
            "{}: {}",
            path.display(),
            why_no_functions(&path, elf.has_symtab)
        );
    }
    Ok((path, elf, table))
}

/// What to say when `patterns` match no function of `table`: first, for a stripped binary
/// whose debug file is not installed, that the function may be a static one named only there;
/// then the closest names.
pub fn no_match(path: &Path, table: &SymbolTable, patterns: &[&str]) -> anyhow::Error {
    // Each already quoted, with the table it is in: "`malloc` (debug file)".
    let closest: Vec<_> = patterns
        .iter()
        .flat_map(|pattern| table.closest(pattern.trim_matches(['*', '?']), 3))
        .collect();
    let patterns = patterns.join("`, `");
    let debug_hint = table.missing_debug_file_hint(path, &patterns);
    let mut message = format!("{}: no function matches `{patterns}`", path.display());
    match (debug_hint, closest.is_empty()) {
        (Some(hint), true) => message.push_str(&format!("; {hint}")),
        (Some(hint), false) => message.push_str(&format!(
            "; {hint}; the closest names it exports: {}",
            closest.join(", ")
        )),
        (None, false) => message.push_str(&format!(" (closest: {})", closest.join(", "))),
        (None, true) => {}
    }
    anyhow::anyhow!(message)
}

/// Lists the functions of `binary` (a path, a program in PATH or a bare library name) that
/// `pattern` names, exactly or as a glob (all when absent; see
/// [`NamePattern`](crate::binary::symbols::NamePattern)): address, size, the table the name is
/// read from, name, one line per address, by its public name, followed by its other exported
/// names.
pub fn list(binary: &str, pattern: Option<&str>) -> anyhow::Result<String> {
    let (path, _, table) = read_table(binary)?;
    let mut functions: Vec<_> = match pattern {
        Some(pattern) => table.find(pattern),
        None => table.public().collect(),
    };
    if let (true, Some(pattern)) = (functions.is_empty(), pattern) {
        return Err(no_match(&path, &table, &[pattern]));
    }
    functions.sort_by(|a, b| a.name.cmp(&b.name).then(a.address.cmp(&b.address)));
    let mut out = String::new();
    for function in functions {
        let _ = write!(
            out,
            "{:#014x} {:>7} {:<10} {}",
            function.address,
            function.size,
            function.source.label(),
            function.name
        );
        if function.name != function.raw {
            let _ = write!(out, "  [{}]", function.raw);
        }
        let mut aliases: Vec<&str> = table.aliases(function).collect();
        aliases.sort_unstable();
        aliases.dedup();
        if !aliases.is_empty() {
            let _ = write!(out, "  (also {})", aliases.join(", "));
        }
        out.push('\n');
    }
    Ok(out)
}

/// Lists the USDT probe sites of `binary` whose `provider:name` matches the glob `pattern` (all
/// when absent): address, name, semaphore and argument operands, one line per site.
pub fn list_usdt(binary: &str, pattern: Option<&str>) -> anyhow::Result<String> {
    let path = locate::locate_from_command_line(binary)?;
    ElfInfo::read(&path)?;
    let probes = crate::binary::usdt::read_probes(&path)?;
    if probes.is_empty() {
        anyhow::bail!(
            "{}: the binary has no USDT probes (no .note.stapsdt notes)",
            path.display()
        );
    }
    let matches = |name: &str| match pattern {
        None => true,
        Some(pattern) => match crate::binary::symbols::glob_pattern(pattern) {
            Some(glob) => glob.matches(name),
            None => name == pattern,
        },
    };
    let mut out = String::new();
    for probe in probes.iter().filter(|p| matches(&p.full_name())) {
        let _ = write!(out, "{:#014x} {}", probe.address, probe.full_name());
        if let Some((address, _)) = probe.semaphore {
            let _ = write!(out, "  semaphore {address:#x}");
        }
        if !probe.args.is_empty() {
            let _ = write!(out, "  args {}", probe.args.join(" "));
        }
        out.push('\n');
    }
    if out.is_empty() {
        let names: Vec<String> = probes.iter().map(|p| p.full_name()).collect();
        return Err(no_usdt_match(&path, pattern.as_slice(), &names));
    }
    Ok(out)
}

/// What to say when `patterns` match none of the USDT probes `names` of `path`: that it has
/// none, that an empty pattern names none, or the closest names.
pub fn no_usdt_match(path: &Path, patterns: &[&str], names: &[String]) -> anyhow::Error {
    let path = path.display();
    if names.is_empty() {
        return anyhow::anyhow!("{path}: the binary has no USDT probes (no .note.stapsdt notes)");
    }
    let patterns: Vec<&str> = patterns.iter().copied().filter(|p| !p.is_empty()).collect();
    let Some(first) = patterns.first() else {
        return anyhow::anyhow!(
            "{path}: an empty pattern matches no USDT probe; give `provider:name` or a glob \
             such as `provider:*` (`spanprobe symbols --usdt` lists them)"
        );
    };
    anyhow::anyhow!(
        "{path}: no USDT probe matches `{}`{}",
        patterns.join("`, `"),
        crate::suggest::closest_hint(first.trim_matches(['*', '?']), names)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_usdt_match_never_quotes_an_empty_pattern() {
        let names = [
            "app:request__start".to_owned(),
            "app:request__done".to_owned(),
        ];
        let path = Path::new("/bin/app");
        assert_eq!(
            no_usdt_match(path, &[""], &names).to_string(),
            "/bin/app: an empty pattern matches no USDT probe; give `provider:name` or a glob \
             such as `provider:*` (`spanprobe symbols --usdt` lists them)"
        );
        assert_eq!(
            no_usdt_match(path, &["app:request_start"], &names).to_string(),
            "/bin/app: no USDT probe matches `app:request_start` (closest: \
             `app:request__start`, `app:request__done`)"
        );
        assert_eq!(
            no_usdt_match(path, &[], &[]).to_string(),
            "/bin/app: the binary has no USDT probes (no .note.stapsdt notes)"
        );
    }
}
