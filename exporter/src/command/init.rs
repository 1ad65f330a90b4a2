//! `spanprobe init`: a starter config for functions of a binary, with argument and return types
//! taken from DWARF where the binary has debug info.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    path::Path,
};

use spanprobe_config::ValueType;

use super::symbols::{no_match, read_table};
use crate::{
    binary::{
        dwarf::{
            FunctionSignature, Param, function_signatures,
            go::GoFunctions,
            path::{MAX_OFFERS, ParamOffers, pointee_members},
        },
        elf::{Code, ElfInfo},
        symbols::FunctionSymbol,
    },
    x86_64::{
        go as goabi,
        go::{GoKind, GoParam, GoPlace, GoValue},
        gocode::GoSites,
        prologue::ReadArguments,
        sysv::{Abi, Place, places},
    },
};

/// Arguments a function can capture (the config's limit).
const MAX_ARGS: usize = spanprobe_config::MAX_CAPTURED_ARGS;

/// The config text for the functions of `binary` matching any of `patterns` (all when empty);
/// with `members`, each pointer-to-struct parameter's members are offered as commented-out
/// `path` captures.
pub fn starter_config(binary: &str, patterns: &[String], members: bool) -> anyhow::Result<String> {
    let (located, elf, table) = read_table(binary)?;
    let path = located.canonicalize().unwrap_or_else(|_| located.clone());
    let mut functions: Vec<&FunctionSymbol> = if patterns.is_empty() {
        table.functions().iter().collect()
    } else {
        patterns.iter().flat_map(|p| table.find(p)).collect()
    };
    functions.sort_by_key(|f| f.address);
    functions.dedup_by_key(|f| f.address);
    // The entry point is jumped to, not called: a span there would be entry-only, and a
    // `return` is refused; a starter config leaves it out.
    let entry_point = elf.entry_point;
    let mut left_out: Vec<String> = functions
        .iter()
        .filter(|f| Some(f.address) == entry_point)
        .map(|f| {
            format!(
                "{}, the program's entry point (jumped to, not called: no return)",
                f.raw
            )
        })
        .collect();
    functions.retain(|f| Some(f.address) != entry_point);
    if functions.is_empty() {
        let patterns: Vec<_> = patterns.iter().map(String::as_str).collect();
        return Err(no_match(&path, &table, &patterns));
    }
    // Go places arguments by its own ABI: its parameters are read apart.
    let go = if elf.is_go {
        let wanted: HashSet<&str> = functions.iter().map(|f| f.raw.as_str()).collect();
        crate::binary::dwarf::go::functions(&path, Some(&wanted)).unwrap_or_default()
    } else {
        GoFunctions::default()
    };
    // Before Go 1.17's register ABI, returns are not probed: spans are entry-only.
    let go_returns = elf.go_version.is_some_and(|version| version >= (1, 17));
    let signatures = function_signatures(&path).unwrap_or_default();
    let by_linkage: HashMap<&str, &FunctionSignature> = signatures
        .values()
        .filter_map(|s| s.linkage_name.as_deref().map(|l| (l, s)))
        .collect();
    let offers = if members && !signatures.is_empty() {
        let wanted: HashSet<&str> = functions.iter().map(|f| f.raw.as_str()).collect();
        pointee_members(&path, &wanted).unwrap_or_default()
    } else {
        HashMap::new()
    };

    // What `run` would refuse is left out, each with a comment saying why, so that the config
    // passes `check` as written.
    let code = Code::open(&path)?;
    functions.retain(|function| match unprobeable(&code, &elf, function) {
        Some(why) => {
            left_out.push(format!("{}, {why}", function.raw));
            false
        }
        None => true,
    });

    let soname = crate::binary::elf::soname(&path);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# spanprobe config for {}, written by `spanprobe init`.",
        path.display()
    );
    if signatures.is_empty() && elf.is_go {
        let _ = writeln!(
            out,
            "# The binary has no debug info: Go arguments and results are found by their \
             position in it, so none is captured (spans still have their durations)."
        );
    } else if signatures.is_empty() {
        let _ = writeln!(
            out,
            "# The binary has no debug info: add `args` and `return` by hand."
        );
    }
    for why in &left_out {
        let _ = writeln!(out, "# Left out: {why}.");
    }
    match &soname {
        // A library's spans belong to the programs that load it: each process's service.name
        // is then its executable's.
        Some(_) => {
            let _ = writeln!(
                out,
                "# service_name: by default, each traced process's executable"
            );
        }
        None => {
            // The name the user gave: `redis-server` is a link to `redis-check-rdb`, which
            // names another program.
            let service = located.file_name().unwrap_or_default().to_string_lossy();
            let _ = writeln!(out, "service_name: {}", quote(&service));
        }
    }
    let _ = writeln!(
        out,
        "probes:\n  - binary: {}\n    functions:",
        quote(&binary_name(&path, soname))
    );
    // Demangled names: a mangled Rust name carries a hash that changes with every build. One
    // entry per name: a name probes every function that has it (C++ overloads).
    let mut written = std::collections::HashSet::new();
    for function in functions {
        if !written.insert(function.name.as_str()) {
            continue;
        }
        let signature = by_linkage
            .get(function.raw.as_str())
            .copied()
            .or_else(|| signatures.get(&function.raw));
        let _ = writeln!(out, "      - symbol: {}", quote(&function.name));
        if let Some(clone) = compiler_clone(&function.raw) {
            // GCC's IPA clones take other arguments than the source declares (`.isra` passes
            // a struct's fields, `.constprop` drops constant ones): DWARF's list is not theirs.
            let _ = writeln!(
                out,
                "        # a compiler-made clone ({clone}): its arguments are not the source's"
            );
        } else if let Some(params) = go.params.get(&function.raw) {
            write_go_params(&mut out, &function.raw, params);
            let returns = go_returns && go_has_ret(&code, function);
            if returns && let Some(results) = go.results.get(&function.raw) {
                write_go_results(&mut out, results);
            }
        } else if let Some(signature) = signature {
            let offers = offers.get(&function.raw).map_or(&[][..], Vec::as_slice);
            write_signature(&mut out, signature, offers);
        }
    }
    Ok(out)
}

/// Why `run` could not probe `function`, if it could not: it is outside the loaded segments,
/// or the kernel refuses a uprobe on the instruction where its probe goes.
fn unprobeable(code: &Code, elf: &ElfInfo, function: &FunctionSymbol) -> Option<String> {
    let Some(offset) = function.file_offset else {
        return Some("not in a loaded segment (no code to probe)".to_owned());
    };
    // Where `run` puts it (see `Target::probe_at`): a Go function's probe is placed apart.
    let moved = (!elf.is_go_code(Some(function.address)))
        .then(|| {
            // Where a config that captures every argument puts it, as init's may.
            code.probe_site(
                offset,
                Some(function.address),
                function.size as u64,
                ReadArguments::ALL,
            )
            .ok()
        })
        .flatten();
    let skip = moved.map_or_else(|| code.entry_skip(offset), |site| site.skip);
    let (instruction, why) = code.refused(offset + skip, function.address + skip)?;
    Some(format!("whose first instruction `{instruction}` has {why}"))
}

/// Whether Go function `function` has a `RET`, where its return is probed: one that never
/// returns (it loops, panics or jumps away) gets an entry-only span, and no `return`.
fn go_has_ret(code: &Code, function: &FunctionSymbol) -> bool {
    function
        .file_offset
        .and_then(|offset| code.bytes(offset, function.size))
        .and_then(|bytes| GoSites::find(&bytes))
        .is_some_and(|sites| !sites.returns.is_empty())
}

/// The config text for the USDT probes of `binary` whose `provider:name` matches any of the
/// globs `patterns` (all when empty): a start probe and its end (`x__start`/`x__done`,
/// `__begin`/`__end`, `__entry`/`__return`) as one span with `until`, every other probe as a
/// span with no duration; each with its arguments, typed by the note.
pub fn starter_usdt_config(binary: &str, patterns: &[String]) -> anyhow::Result<String> {
    let path = crate::binary::locate::locate_from_command_line(binary)?;
    let path = path.canonicalize().unwrap_or(path);
    let probes = crate::binary::usdt::read_probes(&path)?;
    let matches = |name: &str| {
        patterns.is_empty()
            || patterns.iter().any(|pattern| {
                crate::binary::symbols::glob_pattern(pattern)
                    .map_or(name == pattern, |glob| glob.matches(name))
            })
    };
    // One entry per name, in note order; each name's first site stands for its arguments.
    let mut names: Vec<&crate::binary::usdt::UsdtProbe> = Vec::new();
    for probe in &probes {
        if matches(&probe.full_name()) && !names.iter().any(|p| p.full_name() == probe.full_name())
        {
            names.push(probe);
        }
    }
    if names.is_empty() {
        let all: Vec<String> = probes.iter().map(|p| p.full_name()).collect();
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        return Err(super::symbols::no_usdt_match(&path, &patterns, &all));
    }
    const PAIRS: [(&str, &str); 3] = [
        ("__start", "__done"),
        ("__begin", "__end"),
        ("__entry", "__return"),
    ];
    let end_of = |name: &str| {
        PAIRS.iter().find_map(|(start, end)| {
            let stem = name.strip_suffix(start)?;
            let until = format!("{stem}{end}");
            probes
                .iter()
                .any(|p| p.full_name() == until)
                .then_some((stem.to_owned(), until))
        })
    };
    let ends: Vec<String> = names
        .iter()
        .filter_map(|p| end_of(&p.full_name()))
        .map(|(_, end)| end)
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# spanprobe config for the USDT probes of {}, written by `spanprobe init --usdt`.",
        path.display()
    );
    let soname = crate::binary::elf::soname(&path);
    let _ = writeln!(
        out,
        "probes:\n  - binary: {}\n    usdt:",
        quote(&binary_name(&path, soname))
    );
    // A probe named exactly is written as asked; one a glob brought in that fires on every
    // line, allocation or lock is written commented out, so the config is safe as written.
    let named = |name: &str| patterns.iter().any(|pattern| pattern == name);
    let mut active = 0;
    let mut quiet = Vec::new();
    for probe in names {
        let name = probe.full_name();
        if ends.contains(&name) {
            continue;
        }
        let mut entry = String::new();
        let until = end_of(&name);
        write_usdt_probe(&mut entry, probe, until.as_ref());
        match high_frequency(&probe.name) {
            Some(reason) if until.is_none() && !named(&name) => {
                let _ = writeln!(
                    out,
                    "      # {name} fires {reason}: a span each time would flood the\n      \
                     # backend and slow the program down. Uncomment to trace it anyway."
                );
                // Commented out at the entry's indentation: removing `# ` restores it.
                for line in entry.lines() {
                    let text = line.strip_prefix(ENTRY_INDENT).unwrap_or(line);
                    let _ = writeln!(out, "{ENTRY_INDENT}# {text}");
                }
                quiet.push(name);
            }
            _ => {
                out.push_str(&entry);
                active += 1;
            }
        }
    }
    if active == 0 {
        anyhow::bail!(
            "{}: every probe matching `{}` fires too often to trace by default ({}): name one \
             exactly to write it anyway",
            path.display(),
            patterns.join("`, `"),
            quiet.join(", ")
        );
    }
    Ok(out)
}

/// Where a `usdt` entry starts in the text `init` writes.
const ENTRY_INDENT: &str = "      ";

/// One `usdt` entry: `probe`, its `until` and span name when it starts a pair, and its
/// arguments typed by the note.
fn write_usdt_probe(
    out: &mut String,
    probe: &crate::binary::usdt::UsdtProbe,
    until: Option<&(String, String)>,
) {
    let _ = writeln!(out, "      - probe: {}", quote(&probe.full_name()));
    if let Some((stem, until)) = until {
        let _ = writeln!(out, "        until: {}", quote(until));
        let span = stem.rsplit(':').next().unwrap_or(stem).replace("__", ".");
        let _ = writeln!(out, "        span_name: {}", quote(&span));
    }
    if let Some((address, _)) = probe.semaphore {
        let _ = writeln!(
            out,
            "        # guarded by the semaphore at {address:#x}: spanprobe sets it"
        );
    }
    if !probe.args.is_empty() {
        let _ = writeln!(out, "        args:");
    }
    for (index, operand) in probe.args.iter().enumerate() {
        let _ = match crate::x86_64::ArgOperand::parse(operand) {
            // Eight unsigned bytes may be a pointer: the note cannot tell.
            Ok(arg) if arg.size == 8 && !arg.signed => writeln!(
                out,
                "          - {{ index: {index}, name: arg{index} }}  # {operand}; `type: str` \
                 if it points to a string"
            ),
            Ok(_) => writeln!(
                out,
                "          - {{ index: {index}, name: arg{index} }}  # {operand}"
            ),
            Err(reason) => {
                writeln!(out, "          # argument {index} cannot be read: {reason}")
            }
        };
    }
}

/// How often a probe without an end fires, when its name says it is per small operation:
/// Python's and Ruby's `line`, Ruby's `object__create`, PostgreSQL's `lwlock__acquire`,
/// glibc's `memory_*` and `mutex_*`. Judged by the words of its name (split at `_`).
fn high_frequency(name: &str) -> Option<&'static str> {
    const KINDS: [(&[&str], &str); 4] = [
        (&["line"], "on every line the interpreter runs"),
        (&["create", "alloc", "new"], "for every object created"),
        (
            &["memory", "malloc", "free", "sbrk", "mmap", "arena"],
            "on every memory allocation",
        ),
        (
            &[
                "lock", "lwlock", "mutex", "cond", "rwlock", "spin", "futex", "unlock",
            ],
            "on every lock operation",
        ),
    ];
    let words: Vec<&str> = name.split('_').filter(|word| !word.is_empty()).collect();
    KINDS
        .iter()
        .find(|(stems, _)| words.iter().any(|word| stems.contains(word)))
        .map(|(_, reason)| *reason)
}

/// The kind of GCC clone a symbol names (`f.isra.0`, `f.constprop.0`, `f.part.0`), if it is
/// one.
fn compiler_clone(raw: &str) -> Option<&'static str> {
    [".isra.", ".constprop.", ".part."]
        .into_iter()
        .find(|suffix| raw.contains(suffix))
        .map(|suffix| suffix.trim_matches('.'))
}

/// How the config names the binary: a shared library by its SONAME when the loader finds it
/// there (`libsqlite3.so.0`, not the versioned file it links to), anything else by its path.
fn binary_name(path: &Path, soname: Option<String>) -> String {
    soname
        .filter(|soname| {
            crate::binary::locate::find_library(soname)
                .and_then(|found| found.canonicalize().ok())
                .is_some_and(|found| found == path)
        })
        .unwrap_or_else(|| path.display().to_string())
}

/// The `args` and `return` of one function, each argument at the slot the System V convention
/// gives it (see [`places`]), with what cannot be captured and why as comments, and `offers`
/// (members of what parameters point to) commented out.
fn write_signature(out: &mut String, signature: &FunctionSignature, offers: &[ParamOffers]) {
    if let (Some(file), Some(line)) = (&signature.file, signature.line) {
        let _ = writeln!(out, "        # {file}:{line}");
    }
    let returns_in_memory = signature
        .return_type
        .as_ref()
        .is_some_and(|ty| matches!(ty.abi, Abi::Memory { .. }));
    let mut args = Vec::new();
    let mut comments = Vec::new();
    let mut slot_names = HashMap::new();
    let places = places(
        signature.params.iter().map(|param| &param.ty.abi),
        returns_in_memory,
    );
    for (position, (param, place)) in signature.params.iter().zip(places.clone()).enumerate() {
        let name = param
            .name
            .clone()
            .unwrap_or_else(|| format!("arg{position}"));
        let c_name = &param.ty.c_name;
        match (place, &param.ty.abi, param.ty.capture) {
            (Place::Slots { index, count: 1 }, _, Some(ty)) => {
                slot_names.insert(index, name.clone());
                let next = signature.params.get(position + 1);
                match next
                    .zip(places.get(position + 1))
                    .and_then(|(next, place)| counted_buffer(param, index, next, place))
                {
                    Some(counted) => args.push((
                        index,
                        name,
                        counted.ty,
                        Some(counted.len_arg),
                        counted.comment(c_name),
                    )),
                    None => args.push((index, name, ty, None, c_name.clone())),
                }
            }
            // A Rust `&str` or `&[u8]`: one value whose length is in the next slot.
            (Place::Slots { index, count: 2 }, Abi::Integer { fields, .. }, _)
                if let Some(ty) = rust_slice(c_name, fields) =>
            {
                args.push((index, name, ty, Some(index + 1), c_name.clone()));
            }
            // An aggregate in two registers: its members, when each fills one.
            (Place::Slots { index, count }, Abi::Integer { fields, .. }, _)
                if fields.len() == usize::from(count) =>
            {
                for (k, (field, ty)) in fields.iter().enumerate() {
                    let slot = index + k as u8;
                    args.push((
                        slot,
                        format!("{name}.{field}"),
                        *ty,
                        None,
                        format!("{c_name}, .{field}"),
                    ));
                }
            }
            (Place::Slots { index, count }, _, _) => comments.push(format!(
                "{name} ({c_name}): {count} slot(s) from index {index}, not one value: not captured"
            )),
            (Place::Xmm, _, _) => comments.push(format!(
                "{name} ({c_name}): in an XMM register, which uprobes do not capture"
            )),
            (Place::Mixed, _, _) => comments.push(format!(
                "{name} ({c_name}): one integer and one XMM register: not captured"
            )),
            (Place::Stack { index, eightbytes }, _, _) => comments.push(format!(
                "{name} ({c_name}): copied onto the stack ({eightbytes} eightbytes from index \
                 {index}): not captured"
            )),
        }
    }
    if returns_in_memory {
        comments.push("RDI holds the hidden pointer to the return value's space".to_owned());
    }
    let mut lines: Vec<ArgLine> = args
        .iter()
        .map(|(index, name, ty, len_arg, c_name)| {
            let len_arg = len_arg.map_or_else(String::new, |len| format!(", len_arg: {len}"));
            let entry = format!(
                "{{ index: {index}, name: {}, type: {ty}{len_arg} }}",
                quote(name)
            );
            ArgLine::Capture(entry, c_name.clone())
        })
        .collect();
    lines.extend(comments.into_iter().map(ArgLine::Comment));
    write_arg_lines(out, &lines);
    for param in offers {
        if let Some(name) = slot_names.get(&param.slot) {
            write_offers(out, name, param);
        }
    }
    let Some(ret) = &signature.return_type else {
        return;
    };
    let c_name = &ret.c_name;
    let _ = match (&ret.abi, ret.capture) {
        (Abi::Memory { .. }, _) => writeln!(
            out,
            "        return: {{ type: ptr }}  # {c_name}, returned in memory: RAX holds its address"
        ),
        // A returned string may be a buffer the caller frees at once: its address is safe.
        (_, Some(ValueType::Str)) => writeln!(out, "        return: {{ type: ptr }}  # {c_name}"),
        (_, Some(ty)) => writeln!(out, "        return: {{ type: {ty} }}  # {c_name}"),
        (_, None) => writeln!(
            out,
            "        # the return value ({c_name}) cannot be captured"
        ),
    };
}

/// The values inside what parameter `param` points to, commented out, each with the chain of
/// offsets it resolves to (what `offsets` would say without debug info).
fn write_offers(out: &mut String, param: &str, offers: &ParamOffers) {
    let _ = writeln!(
        out,
        "          # members of what `{param}` points to; uncomment to capture:"
    );
    for offer in &offers.members {
        // `->y[1]` of `r` is `r.y[1]`; `[9]` of a reference `a` is `a[9]`.
        let inside = offer.path.trim_start_matches("->").trim_start_matches('.');
        let name = if offer.path.starts_with('[') {
            format!("{param}{inside}")
        } else {
            format!("{param}.{inside}")
        };
        let read_as = match offer.chain.enumerators {
            Some(_) => "its enumerator's name".to_owned(),
            None => offer.chain.ty.to_string(),
        };
        let _ = writeln!(
            out,
            "          # - {{ index: {}, name: {}, path: {} }}  # {}, read as {read_as}, offsets {:?}",
            offers.slot,
            quote(&name),
            quote(&offer.path),
            offer.chain.c_name,
            offer.chain.offsets,
        );
    }
    if offers.truncated {
        let _ = writeln!(
            out,
            "          # (the first {MAX_OFFERS} only: write a `path` for the others)"
        );
    }
}

/// A pointer to bytes read with the size the next parameter gives.
struct CountedBuffer<'a> {
    ty: ValueType,
    len_arg: u8,
    len_name: &'a str,
    read_only: bool,
}

impl CountedBuffer<'_> {
    fn comment(&self, c_name: &str) -> String {
        let len = self.len_name;
        if self.read_only {
            format!("{c_name}, {len} bytes")
        } else {
            // Not const: the call may fill it, after entry.
            format!("{c_name}, {len} bytes as at entry; `at: return` reads what the call wrote")
        }
    }
}

/// How `param`, in slot `index`, is read when it points to bytes counted by the parameter
/// after it, `next` at `place`: a `const char *` as `str`, any other pointer to bytes
/// (`void *`, `char *`, `unsigned char *`, `uint8_t *`) as `bytes`, both with `len_arg`.
/// The count must be the next slot, an unsigned integer named as a size is ([`size_like`]):
/// a pointer followed by `int flags` or `size_t count` of `int *` elements is not a buffer.
fn counted_buffer<'a>(
    param: &Param,
    index: u8,
    next: &'a Param,
    place: &Place,
) -> Option<CountedBuffer<'a>> {
    let buffer = param.ty.buffer?;
    let len_name = next.name.as_deref()?;
    let unsigned = matches!(
        next.ty.capture,
        Some(ValueType::U8 | ValueType::U16 | ValueType::U32 | ValueType::U64)
    );
    let next_slot = *place
        == Place::Slots {
            index: index + 1,
            count: 1,
        };
    if !(unsigned && next_slot && size_like(len_name)) {
        return None;
    }
    Some(CountedBuffer {
        ty: if buffer.text && buffer.read_only {
            ValueType::Str
        } else {
            ValueType::Bytes
        },
        len_arg: index + 1,
        len_name,
        read_only: buffer.read_only,
    })
}

/// Whether a parameter's name says it counts bytes: `n`, or a name ending in `len`,
/// `length`, `size`, `sz`, `count`, `cnt`, `bytes` or `nbyte` (`buflen`, `key_size`,
/// `nbytes`), in any case.
fn size_like(name: &str) -> bool {
    const SUFFIXES: [&str; 8] = [
        "len", "length", "size", "sz", "count", "cnt", "bytes", "nbyte",
    ];
    let name = name.to_ascii_lowercase();
    name == "n" || SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// The `return` of one Go function: its first result, when one register holds it whole; a
/// last `error` result needs nothing written, as it gives the span its status by itself.
fn write_go_results(out: &mut String, results: &[GoParam]) {
    let (Some(first), Some(place)) = (results.first(), goabi::places(results).into_iter().next())
    else {
        return;
    };
    // Go names unnamed results `~r0`, `~r1`...
    let name = first
        .name
        .clone()
        .filter(|name| !name.starts_with('~'))
        .unwrap_or_else(|| "result".to_owned());
    let go_type = &first.go_type;
    let _ = match (place, first.capture) {
        (_, _) if go_type == "error" => writeln!(
            out,
            "        # {name} (error): a non-nil error gives the span status ERROR by itself"
        ),
        (GoPlace::Registers { integers, .. }, Some(ty)) if integers.len() == 1 => writeln!(
            out,
            "        return: {{ name: {}, type: {ty} }}  # {go_type} in {}",
            quote(&name),
            integers[0]
        ),
        _ => writeln!(
            out,
            "        # {name} ({go_type}): the return value is read as one number (RAX)"
        ),
    };
    if results.len() > 1 && results.last().is_some_and(|last| last.go_type == "error") {
        let _ = writeln!(
            out,
            "        # a non-nil error (the last result) gives the span status ERROR by itself"
        );
    }
}

/// The `args` of Go function `symbol`, each at its declared position with the registers Go's
/// ABI gives it (after a generic function's dictionary): what reads it as `check` would accept
/// it, a struct passed by value by its fields, and what cannot be read as a comment saying why.
fn write_go_params(out: &mut String, symbol: &str, params: &[GoParam]) {
    let mut lines = Vec::new();
    let places = goabi::parameter_places(symbol, params);
    for (index, (param, place)) in params.iter().zip(places).enumerate() {
        let name = param.name.clone().unwrap_or_else(|| format!("arg{index}"));
        let go_type = &param.go_type;
        let integers = match place {
            GoPlace::Registers { integers, .. } if !integers.is_empty() => integers,
            GoPlace::Registers { .. } => {
                lines.push(ArgLine::Comment(format!(
                    "{name} ({go_type}): in a floating-point register, which uprobes do not \
                     capture"
                )));
                continue;
            }
            GoPlace::Stack => {
                lines.push(ArgLine::Comment(format!(
                    "{name} ({go_type}): passed on the stack, which is not read yet"
                )));
                continue;
            }
        };
        let Some(value) = GoValue::parameter(param, &name, &integers) else {
            lines.push(ArgLine::Comment(format!(
                "{name} ({go_type}): not in registers"
            )));
            continue;
        };
        lines.extend(go_value_lines(index, &value, None));
    }
    write_arg_lines(out, &lines);
}

/// The capture of Go value `value` (parameter `index`, at `path` within it), as the lines of an
/// `args` list: read whole by the type that reads it, or by its fields when it is a struct
/// passed by value, or a comment with the reason none does.
fn go_value_lines(index: usize, value: &GoValue<'_>, path: Option<&str>) -> Vec<ArgLine> {
    let registers: Vec<String> = value.registers.iter().map(ToString::to_string).collect();
    let at = format!("{} in {}", value.go_type, registers.join(", "));
    let path_key = path.map_or_else(String::new, |path| format!(", path: {}", quote(path)));
    // An interface by its data word, a slice of other than bytes by its array's address.
    let ty = value.default_type().or(match value.kind {
        GoKind::Interface | GoKind::Slice { .. } => Some(ValueType::Ptr),
        _ => None,
    });
    if let Some(ty) = ty {
        // Counted by the slice's length, the most kept: `bytes` always says how many.
        let len = match ty {
            ValueType::Bytes => format!(", len: {}", spanprobe_config::DEFAULT_STR_LEN),
            _ => String::new(),
        };
        return vec![match value.read(ty, false) {
            Ok(_) => ArgLine::Capture(
                format!(
                    "{{ index: {index}, name: {}, type: {ty}{len}{path_key} }}",
                    quote(&value.name)
                ),
                at,
            ),
            Err(why) => ArgLine::Comment(why),
        }];
    }
    if let GoKind::Struct(fields) = value.kind {
        return fields
            .iter()
            .flat_map(|field| {
                let path = format!("{}.{}", path.unwrap_or(""), field.name);
                match value.clone().select(&format!(".{}", field.name)) {
                    Ok(field) => go_value_lines(index, &field, Some(&path)),
                    Err(why) => vec![ArgLine::Comment(why)],
                }
            })
            .collect();
    }
    vec![ArgLine::Comment(format!(
        "{} ({}): no type reads it whole",
        value.name, value.go_type
    ))]
}

/// One line of a function's `args` in a starter config.
enum ArgLine {
    /// A capture, and what its comment says of the value.
    Capture(String, String),
    /// Why a value is not captured.
    Comment(String),
}

/// `lines` as a function's `args`: at most [`MAX_ARGS`] captures (the rest commented out,
/// with the reason), and the `args` key itself only when something is captured, since a key
/// with nothing under it is no list.
fn write_arg_lines(out: &mut String, lines: &[ArgLine]) {
    if lines.is_empty() {
        return;
    }
    let captures = lines
        .iter()
        .filter(|line| matches!(line, ArgLine::Capture(..)))
        .count();
    let _ = if captures > 0 {
        writeln!(out, "        args:")
    } else {
        writeln!(out, "        # args: none can be captured")
    };
    let mut written = 0;
    for line in lines {
        let _ = match line {
            ArgLine::Capture(entry, about) if written < MAX_ARGS => {
                written += 1;
                writeln!(out, "          - {entry}  # {about}")
            }
            ArgLine::Capture(entry, about) => writeln!(
                out,
                "          # - {entry}  # {about}; at most {MAX_ARGS} values per function"
            ),
            ArgLine::Comment(why) => writeln!(out, "          # {why}"),
        };
    }
}

/// The type a Rust string or byte slice is captured as, with its length from its second
/// slot; `None` for any other aggregate. `fields` are the aggregate's members, as DWARF has them.
fn rust_slice(c_name: &str, fields: &[(String, ValueType)]) -> Option<ValueType> {
    let [(pointer, _), (length, _)] = fields else {
        return None;
    };
    if (pointer.as_str(), length.as_str()) != ("data_ptr", "length") {
        return None;
    }
    match c_name.trim_start_matches("struct ") {
        "&str" | "&mut str" => Some(ValueType::Str),
        "&[u8]" | "&mut [u8]" | "&[i8]" | "&mut [i8]" => Some(ValueType::Bytes),
        _ => None,
    }
}

/// A YAML scalar for `text`: plain when safe, single-quoted otherwise.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !text.starts_with(['-', '.']);
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compiler_clones() {
        assert_eq!(
            compiler_clone("_ZNK6shapes6Square4areaEv.isra.0"),
            Some("isra")
        );
        assert_eq!(compiler_clone("parse.constprop.0"), Some("constprop"));
        assert_eq!(compiler_clone("parse.part.1"), Some("part"));
        assert_eq!(compiler_clone("parse"), None);
    }

    #[test]
    fn rust_strings_and_byte_slices_are_one_counted_value() {
        let fields = |a: &str, b: &str| {
            vec![
                (a.to_owned(), ValueType::Ptr),
                (b.to_owned(), ValueType::U64),
            ]
        };
        let slice = fields("data_ptr", "length");
        assert_eq!(rust_slice("struct &str", &slice), Some(ValueType::Str));
        assert_eq!(
            rust_slice("struct &mut [u8]", &slice),
            Some(ValueType::Bytes)
        );
        assert_eq!(rust_slice("struct &[u64]", &slice), None);
        assert_eq!(rust_slice("struct &str", &fields("ptr", "len")), None);
    }

    #[test]
    fn sizes_are_told_by_their_names() {
        for name in [
            "n", "len", "buflen", "key_size", "nbytes", "nbyte", "count", "Length",
        ] {
            assert!(size_like(name), "{name}");
        }
        for name in ["flags", "mode", "fd", "index", "name"] {
            assert!(!size_like(name), "{name}");
        }
    }

    #[test]
    fn per_operation_probes_are_told_by_their_names() {
        assert!(high_frequency("line").is_some());
        assert!(high_frequency("object__create").is_some());
        assert!(high_frequency("lwlock__acquire").is_some());
        assert!(high_frequency("memory_malloc_retry").is_some());
        assert!(high_frequency("mutex_entry").is_some());
        // A word inside another is not the word: `deadline`.
        for name in [
            "function__entry",
            "audit",
            "start",
            "deadline",
            "query__start",
        ] {
            assert_eq!(high_frequency(name), None, "{name}");
        }
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("two_ints_and_return"), "two_ints_and_return");
        assert_eq!(quote("/usr/bin/app"), "/usr/bin/app");
        assert_eq!(quote("ns::f"), "'ns::f'");
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote("-x"), "'-x'");
    }
}
