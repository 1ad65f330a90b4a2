//! The functions of a Go binary from its `.gopclntab`, the table the Go runtime itself reads
//! to name functions in panics and profiles: it stays when the binary is stripped (Debian
//! strips its Go programs; `-ldflags=-s` does too), so Go functions keep their names
//! (`main.processFile`, `net/http.(*conn).serve`) for probing without a symbol table.
//!
//! The layouts of Go 1.16 to 1.17 and of Go 1.18 and later are read (`debug/gosym` in Go's
//! standard library is the reference); older tables are not, as their functions pass
//! arguments on the stack anyway.

/// One function the table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoFunction {
    pub name: String,
    pub address: u64,
    /// Bytes to the next function's entry.
    pub size: u64,
}

const GO116_MAGIC: u32 = 0xffff_fffa;
const GO118_MAGIC: u32 = 0xffff_fff0;
const GO120_MAGIC: u32 = 0xffff_fff1;

/// The functions in the `.gopclntab` of `file`, or `None` without one (or in another layout).
///
/// Where the table is depends on how the program was linked: Go's own linker gives it a
/// section, `.gopclntab` (`.data.rel.ro.gopclntab` in a position-independent executable); an
/// external linker (cgo with `-linkmode=external`, as Debian builds PIE programs) merges the
/// latter into `.data.rel.ro`, where the table is found by its header, as Go's own tools do
/// when the symbols that mark it are stripped.
pub fn of_file(file: &object::File<'_>) -> Option<Vec<GoFunction>> {
    use object::{Object as _, ObjectSection as _};
    let text = file.section_by_name(".text")?;
    let text_range = text.address()..text.address() + text.size();
    // A table whose functions are all code of `.text`: the header's bytes alone could be data.
    let plausible = |found: &Vec<GoFunction>| {
        !found.is_empty()
            && found
                .iter()
                .all(|f| text_range.contains(&f.address) && f.address + f.size <= text_range.end)
    };
    if let Some(table) = [".gopclntab", ".data.rel.ro.gopclntab"]
        .into_iter()
        .find_map(|name| file.section_by_name(name))
    {
        let start = text_start(file, table.address());
        return functions(table.data().ok()?, start.unwrap_or(text.address()));
    }
    // Only a Go binary's data is searched: a C library's is no place for the table.
    if file.section_by_name(".go.buildinfo").is_none()
        && file.section_by_name(".note.go.buildid").is_none()
    {
        return None;
    }
    let merged = file.section_by_name(".data.rel.ro")?;
    let data = merged.data().ok()?;
    headers(data).find_map(|at| {
        let start = text_start(file, merged.address() + at as u64).unwrap_or(text.address());
        functions(&data[at..], start).filter(plausible)
    })
}

/// Where each table header in `data` may start: its magic and fixed bytes, 8-byte aligned.
fn headers(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (0..data.len().saturating_sub(8))
        .step_by(8)
        .filter(move |&at| {
            let magic = read_u32(data, at);
            matches!(magic, Some(GO118_MAGIC | GO120_MAGIC | GO116_MAGIC))
                && data.get(at + 4..at + 8) == Some(&[0, 0, 1, 8][..])
        })
}

/// The text start a Go 1.18 table at virtual address `table` holds, when its header has it
/// only through a relocation (a position-independent executable: the word is 0 in the file,
/// the address in the `R_X86_64_RELATIVE` entry's addend); `None` when neither says.
fn text_start(file: &object::File<'_>, table: u64) -> Option<u64> {
    use object::Object as _;
    // magic, two pad bytes, quantum, pointer size, nfunc, nfiles, then textStart.
    let word = table + 8 + 2 * 8;
    file.dynamic_relocations()?
        .find(|(offset, _)| *offset == word)
        .and_then(|(_, relocation)| u64::try_from(relocation.addend()).ok())
        .filter(|&start| start != 0)
}

/// The functions in `table`, the contents of a `.gopclntab`; `text` is the address of the
/// `.text` section, where Go 1.18's entry offsets start when the header does not say. `None`
/// for a table of another layout, or one that does not hold together.
pub fn functions(table: &[u8], text: u64) -> Option<Vec<GoFunction>> {
    let magic = u32::from_le_bytes(table.get(..4)?.try_into().ok()?);
    let relative = match magic {
        GO118_MAGIC | GO120_MAGIC => true,
        GO116_MAGIC => false,
        _ => return None,
    };
    // Two zero bytes, the PC quantum, the pointer size: 8 on x86-64.
    if table.get(4..8)? != [0, 0, 1, 8] {
        return None;
    }
    let word = |i: usize| read_u64(table, 8 + 8 * i);
    let count = usize::try_from(word(0)?).ok()?;
    // Go 1.18 added the text start after the two counts.
    let (names, functab, text_start) = if relative {
        let start = word(2).filter(|&start| start != 0).unwrap_or(text);
        (word(3)?, word(7)?, start)
    } else {
        (word(2)?, word(6)?, 0)
    };
    let names = table.get(usize::try_from(names).ok()?..)?;
    let functab = table.get(usize::try_from(functab).ok()?..)?;
    // Each entry is (entry, offset of the function's record), then the end of the last
    // function: 4-byte fields, relative to the text start, since Go 1.18; pointers before.
    let field = if relative { 4 } else { 8 };
    let read_field = |at: usize| {
        if relative {
            read_u32(functab, at).map(u64::from)
        } else {
            read_u64(functab, at)
        }
    };
    let mut functions = Vec::with_capacity(count);
    for i in 0..count {
        let entry = read_field(2 * field * i)?;
        let record = usize::try_from(read_field(2 * field * i + field)?).ok()?;
        let next = read_field(2 * field * (i + 1))?;
        // The record starts with the entry, then the name's offset.
        let name_offset = read_u32(functab, record.checked_add(field)?)?;
        let name = names.get(usize::try_from(name_offset).ok()?..)?;
        let name = &name[..name.iter().position(|&b| b == 0)?];
        functions.push(GoFunction {
            name: String::from_utf8_lossy(name).into_owned(),
            address: text_start.checked_add(entry)?,
            size: next.checked_sub(entry)?,
        });
    }
    Some(functions)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Go 1.18 table of two functions, `main.a` at text+0x20 and `main.b` at text+0x60
    /// ending at text+0x80, laid out as the linker lays it out.
    fn go118_table(text_start: u64) -> Vec<u8> {
        let mut table = Vec::new();
        table.extend(GO118_MAGIC.to_le_bytes());
        table.extend([0, 0, 1, 8]);
        let header = 8 + 8 * 8;
        let names_at = header as u64;
        let names = b"main.a\0main.b\0";
        let functab_at = names_at + names.len() as u64;
        // nfunc, nfiles, textStart, funcname, cu, filetab, pctab, pcln
        for word in [2, 0, text_start, names_at, 0, 0, 0, functab_at] {
            table.extend(u64::to_le_bytes(word));
        }
        table.extend(names);
        // (entry, record) twice, then the end; records after it: entry, name offset.
        let records = 5 * 4;
        for word in [0x20, records, 0x60, records + 8, 0x80] {
            table.extend(u32::to_le_bytes(word));
        }
        for (entry, name) in [(0x20u32, 0u32), (0x60, 7)] {
            table.extend(entry.to_le_bytes());
            table.extend(name.to_le_bytes());
        }
        table
    }

    #[test]
    fn reads_names_addresses_and_sizes() {
        assert_eq!(
            functions(&go118_table(0x401000), 0x999000),
            Some(vec![
                GoFunction {
                    name: "main.a".into(),
                    address: 0x401020,
                    size: 0x40,
                },
                GoFunction {
                    name: "main.b".into(),
                    address: 0x401060,
                    size: 0x20,
                },
            ])
        );
        // A position-independent binary's header holds no text start: `.text`'s serves.
        let pie = functions(&go118_table(0), 0x1000).unwrap();
        assert_eq!(pie[0].address, 0x1020);
    }

    /// Merged into `.data.rel.ro` by an external linker, the table is found by its header
    /// among other data, 8-byte aligned.
    #[test]
    fn finds_a_table_by_its_header_among_other_data() {
        let mut data = vec![0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 9];
        data.extend([7u8; 8]);
        let at = data.len();
        data.extend(go118_table(0x401000));
        assert_eq!(headers(&data).collect::<Vec<_>>(), [at]);
        let found = functions(&data[at..], 0).unwrap();
        assert_eq!(found[1].name, "main.b");
    }

    #[test]
    fn refuses_other_layouts_and_broken_tables() {
        let mut old = go118_table(0x401000);
        old[..4].copy_from_slice(&0xffff_fffbu32.to_le_bytes());
        assert_eq!(functions(&old, 0), None);
        let table = go118_table(0x401000);
        assert_eq!(functions(&table[..table.len() - 4], 0), None);
        assert_eq!(functions(&[], 0), None);
    }

    #[test]
    fn reads_the_table_of_a_real_go_binary() {
        // The Go toolchain's own gofmt, stripped by Debian.
        let path = std::path::Path::new("/usr/lib/go-1.19/bin/gofmt");
        let Ok(data) = std::fs::read(path) else {
            panic!(
                "{} is missing: scripts/setup.sh installs golang-go",
                path.display()
            );
        };
        let file = object::File::parse(&*data).unwrap();
        let found = of_file(&file).unwrap();
        let main = found.iter().find(|f| f.name == "main.main").unwrap();
        assert!(main.address >= 0x400000 && main.size > 0);
        assert!(found.iter().any(|f| f.name == "go/parser.ParseFile"));
    }
}
