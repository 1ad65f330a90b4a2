//! Config probes to attach points: each target's file found and checked once ([`Binary`]),
//! then each of its probes resolved by its kind ([`crate::plan::kind`]) to the file offsets
//! the kernel attaches uprobes at.
//!
//! We compute file offsets ourselves rather than letting aya resolve symbols: aya's
//! shared-library offset handling is wrong in some layouts (aya-rs/aya#1198). A function that
//! starts with `endbr64` and a push is probed just past the `endbr64` (see
//! [`elf::entry_skip`](crate::binary::elf::entry_skip)).

use std::{num::NonZeroU32, path::Path};

use spanprobe_common::MAX_PROCESS_TREES;
use spanprobe_config::{Config, FunctionSpec, Located, ProbeTarget, Problem};

use crate::{
    binary::{
        Binary,
        elf::{Code, ElfInfo},
        locate,
    },
    plan::{
        error::{ResolveError, ResolveErrorKind},
        kind::{self, claims::Claims},
        probe::{Probe, ProbeKind},
        target::Target,
    },
};

/// Every function of a config resolved, with what resolution noticed that is not wrong.
#[derive(Debug, Default)]
pub struct Resolved {
    pub functions: Vec<Probe>,
    /// Functions left out of a glob (another entry probes them, or the kernel cannot), each
    /// placed at the entry that left them out.
    pub notes: Vec<Problem>,
    /// Handoffs resolved so far: the next one's number.
    pub handoffs: u32,
}

/// Resolves every function of `config`, or says every problem. A glob, or a symbol defined at
/// several addresses, yields one [`Probe`] per address; a function several entries
/// match, one (see [`Claims`]).
pub fn resolve(config: &Config) -> Result<Resolved, Vec<ResolveError>> {
    let mut resolved = Resolved::default();
    let mut errors = Vec::new();
    for (t, target) in config.probes.iter().enumerate() {
        let field = format!("probes[{t}]");
        let stack_frames = config.limits.stack_frames;
        resolve_target(
            target,
            &config.base_dir,
            &field,
            stack_frames,
            &mut resolved,
            &mut errors,
        );
    }
    let trees = crate::plan::capture::process_trees(&resolved.functions);
    if trees.len() > MAX_PROCESS_TREES
        && let Some((t, target)) = config
            .probes
            .iter()
            .enumerate()
            .filter(|(_, target)| target.pid.is_some())
            .nth(MAX_PROCESS_TREES)
    {
        errors.push(ResolveError {
            position: target
                .pid
                .as_ref()
                .map_or(target.position, |pid| pid.position),
            field: format!("probes[{t}].pid"),
            kind: ResolveErrorKind::TooManyTrees { count: trees.len() },
        });
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

fn resolve_target(
    target: &Located<ProbeTarget>,
    base_dir: &Path,
    field: &str,
    stack_frames: u16,
    resolved: &mut Resolved,
    errors: &mut Vec<ResolveError>,
) {
    let functions = &mut resolved.functions;
    let binary_error = |kind: ResolveErrorKind| ResolveError {
        position: target.binary.position,
        field: format!("{field}.binary"),
        kind,
    };
    let path = match locate::locate(&target.binary, base_dir) {
        Ok(path) => path,
        Err(error) => return errors.push(binary_error(error.into())),
    };
    // Read once: the ELF facts, the symbols and the DWARF of every entry are parsed from it.
    let read = crate::binary::elf::read(&path).and_then(|data| {
        let elf = ElfInfo::parse(&path, &data)?;
        Ok((data, elf, Code::open(&path)?))
    });
    let (data, elf, code) = match read {
        Ok(read) => read,
        Err(error) => return errors.push(binary_error(error.into())),
    };
    let pid = target
        .pid
        .as_ref()
        .and_then(|pid| NonZeroU32::new(pid.value));
    if let (Some(located), Some(pid)) = (&target.pid, pid)
        && let Err(kind) = check_mapped(pid, &path)
    {
        errors.push(ResolveError {
            position: located.position,
            field: format!("{field}.pid"),
            kind,
        });
    }
    let binary = Target {
        binary: Binary::new(path, data, elf, code),
        pid,
        stack_frames,
        position: target.binary.position,
        field: format!("{field}.binary"),
        reported: Default::default(),
    };
    let target_start = functions.len();
    // Entries that name their function claim it before the globs that also match it; whether
    // a symbol is a glob depends on the names the binary has (see `NamePattern`).
    let table = match target.functions.iter().any(|f| f.symbol.is_some()) {
        true => binary.symbols(errors),
        false => None,
    };
    let mut entries: Vec<(bool, usize, &Located<FunctionSpec>)> = target
        .functions
        .iter()
        .enumerate()
        .map(|(f, function)| (kind::claims::is_glob(function, table), f, function))
        .collect();
    entries.sort_by_key(|(glob, f, _)| (*glob, *f));
    let mut claims = Claims::default();
    for (_, f, function) in entries {
        let field = format!("{field}.functions[{f}]");
        let first_id = functions.len();
        functions.extend(kind::function::probes(
            &binary,
            function,
            &field,
            first_id,
            &mut claims,
            errors,
            &mut resolved.notes,
        ));
    }
    if functions[target_start..]
        .iter()
        .any(|f| matches!(f.kind, ProbeKind::GoCall { .. }))
    {
        functions.extend(kind::goruntime::helpers(&binary, errors));
    }
    if !target.usdt.is_empty() {
        // Unique in the config: each entry before has resolved to at least one probe.
        let first_pair = u32::try_from(functions.len()).unwrap_or(u32::MAX) + 1;
        let usdt = kind::usdt::probes(&binary, &target.usdt, field, first_pair, errors);
        functions.extend(usdt);
    }
    if !target.handoffs.is_empty() {
        kind::handoff::resolve(
            &binary,
            &target.handoffs,
            field,
            target_start,
            &mut resolved.handoffs,
            functions,
            errors,
        );
    }
}

/// Checks that process `pid` runs and has `binary` mapped (its code or a library it loaded),
/// matched by inode as the kernel matches uprobes to files.
fn check_mapped(pid: NonZeroU32, binary: &Path) -> Result<(), ResolveErrorKind> {
    use std::os::unix::fs::MetadataExt as _;
    let pid = pid.get();
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        // Another user's process, without the right to read its maps, cannot be told apart.
        return if Path::new(&format!("/proc/{pid}")).exists() {
            Ok(())
        } else {
            Err(ResolveErrorKind::NoProcess { pid })
        };
    };
    let Ok(inode) = std::fs::metadata(binary).map(|m| m.ino().to_string()) else {
        return Ok(());
    };
    // `address perms offset dev inode path`
    if maps
        .lines()
        .any(|line| line.split_whitespace().nth(4) == Some(inode.as_str()))
    {
        return Ok(());
    }
    let executable = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_or_else(|_| "?".to_owned(), |exe| exe.display().to_string());
    Err(ResolveErrorKind::NotMapped {
        pid,
        executable,
        binary: binary.to_owned(),
    })
}
