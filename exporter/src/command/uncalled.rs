//! What to tell a user whose probes in a binary saw no call at all by the end of a run, so that
//! zero spans never come without a hint.

use std::{collections::BTreeMap, path::Path};

use crate::plan::probe::Probe;

/// One warning per probed binary none of whose functions was called (`called` is indexed by
/// function id), with the likely reason when `program`, the traced command, does not load it.
/// Binaries with sampled functions are left out: their calls may all have been sampled out.
pub fn warnings(functions: &[Probe], called: &[bool], program: Option<&Path>) -> Vec<String> {
    let mut by_binary: BTreeMap<&Path, (usize, bool)> = BTreeMap::new();
    for (id, function) in functions.iter().enumerate() {
        // Not a span's own probe: never the function of an event.
        if !function.kind.makes_spans() {
            continue;
        }
        let sampled = function
            .spec
            .sample_rate
            .as_ref()
            .is_some_and(|rate| rate.value < 1.0);
        let seen = called.get(id).copied().unwrap_or(false) || sampled;
        let entry = by_binary.entry(&function.binary).or_insert((0, false));
        entry.0 += 1;
        entry.1 |= seen;
    }
    by_binary
        .into_iter()
        .filter(|(_, (_, seen))| !seen)
        .map(|(binary, (count, _))| {
            let mut warning = format!(
                "{}: none of its {count} probed function{} was called by a traced process",
                binary.display(),
                if count == 1 { "" } else { "s" }
            );
            if let Some(hint) = program.and_then(|program| not_loaded(program, binary)) {
                warning.push_str(&hint);
            }
            warning
        })
        .collect()
}

/// When `binary` is a shared library that `program` does not load directly: the hint that the
/// program may carry the library's code itself.
fn not_loaded(program: &Path, binary: &Path) -> Option<String> {
    let soname = crate::binary::elf::soname(binary)?;
    if crate::binary::elf::needed_libraries(program).contains(&soname) {
        return None;
    }
    Some(format!(
        "; {} does not load {soname} directly: it may have the library's code built in \
         (linked statically), so probe {} itself",
        program.display(),
        program.display()
    ))
}

#[cfg(test)]
mod tests {

    use spanprobe_config::FunctionSpec;

    use super::*;

    fn function(binary: &str) -> Probe {
        Probe::new(binary, "f", 0, FunctionSpec::default())
    }

    #[test]
    fn names_each_binary_none_of_whose_functions_was_called() {
        let functions = [function("/a"), function("/b"), function("/b")];
        assert_eq!(
            warnings(&functions, &[true, false, false], None),
            ["/b: none of its 2 probed functions was called by a traced process"]
        );
        assert!(
            warnings(&functions, &[false, true, false], None)[0]
                .starts_with("/a: none of its 1 probed function was")
        );
    }

    /// sqlite3 loads libsqlite3 itself; sh does not.
    #[test]
    fn says_when_the_program_does_not_load_the_library() {
        let library = crate::binary::locate::find_library("libsqlite3.so.0").unwrap();
        let sqlite3 = crate::binary::locate::locate_from_command_line("sqlite3").unwrap();
        let sh = crate::binary::locate::locate_from_command_line("sh").unwrap();
        assert_eq!(not_loaded(&sqlite3, &library), None);
        let hint = not_loaded(&sh, &library).unwrap();
        assert!(
            hint.contains("does not load libsqlite3.so.0 directly") && hint.ends_with("itself"),
            "{hint}"
        );
    }
}
