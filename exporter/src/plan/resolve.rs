//! Config probes to attach points: each target's file found and checked once ([`Binary`]),
//! then each of its probes resolved by its kind ([`crate::plan::kind`]) to the file offsets
//! the kernel attaches uprobes at.
//!
//! We compute file offsets ourselves rather than letting aya resolve symbols: aya's
//! shared-library offset handling is wrong in some layouts (aya-rs/aya#1198). A function that
//! starts with `endbr64` and a push is probed just past the `endbr64` (see
//! [`elf::entry_skip`](crate::binary::elf::entry_skip)).

use std::{
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::Arc,
};

use spanprobe_common::MAX_PROCESS_TREES;
use spanprobe_config::{
    Config, FunctionSpec, Keep, Located, Position, ProbeTarget, Problem, TargetFile,
};

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
        processes::{self, ProcessTree},
        running::{self, FileKey, RunningFile},
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
    /// The files `executable:` targets found running, by target.
    pub running_files: Vec<(usize, FileKey)>,
    /// Whether some `executable:` target found no process running it: what its functions
    /// will need is not known until one starts.
    pub waiting: bool,
    /// The id of `functions[0]`: functions resolved after start follow those of before.
    pub first_id: usize,
}

/// Resolves every function of `config`, or says every problem. A glob, or a symbol defined at
/// several addresses, yields one [`Probe`] per address; a function several entries
/// match, one (see [`Claims`]).
pub fn resolve(config: &Config) -> Result<Resolved, Vec<ResolveError>> {
    let mut resolved = Resolved::default();
    let mut errors = Vec::new();
    let stack_frames = config.limits.stack_frames;
    // Each target's files, opened (one per running file for an `executable:`), for handoffs.
    let mut opened: Vec<(usize, Target)> = Vec::with_capacity(config.probes.len());
    for (t, target) in config.probes.iter().enumerate() {
        let field = format!("probes[{t}]");
        let found = target_processes(target, &field)
            .and_then(|processes| find_files(target, &config.base_dir, &field, processes));
        let files = match found {
            Ok(files) => files,
            // Not wrong: its processes are found as they start. Unless it is narrowed to
            // processes (`pid:`, `container:`) which, once found, make a tree the programs
            // are loaded with.
            Err(error)
                if matches!(error.kind, ResolveErrorKind::NoProcessRuns { .. })
                    && target.pid.is_none()
                    && target.container.is_none() =>
            {
                resolved.notes.push(error.to_problem());
                resolved.waiting = true;
                continue;
            }
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for file in files {
            resolved.running_files.extend(file.key.map(|key| (t, key)));
            let own = resolve_target(target, file, stack_frames, &mut resolved, &mut errors);
            opened.extend(own.map(|own| (t, own)));
        }
    }
    for function in &resolved.functions {
        errors.extend(when_problems(function));
        errors.extend(keep_problem(function));
    }
    // After every target: an end of a handoff may be a function another target traces.
    for (t, own) in &opened {
        let target = &config.probes[*t];
        if target.handoffs.is_empty() {
            continue;
        }
        let field = format!("probes[{t}]");
        // An end in another binary (a library's submit, the program's callback) is opened
        // as a target of its own, with this one's processes.
        let open = |binary: &Located<String>, end_field: &str| {
            let field = format!("{end_field}.binary");
            let file = locate_binary(binary, &config.base_dir, &field, own.processes.clone())?;
            open_target(target, file, stack_frames)
        };
        kind::handoff::resolve(
            own,
            &target.handoffs,
            &field,
            open,
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
            .filter(|(_, target)| target.pid.is_some() || target.container.is_some())
            .nth(MAX_PROCESS_TREES)
    {
        let (key, position) = match (&target.pid, &target.container) {
            (Some(pid), _) => ("pid", pid.position),
            (None, Some(container)) => ("container", container.position),
            (None, None) => ("pid", target.position),
        };
        errors.push(ResolveError {
            position,
            field: format!("probes[{t}].{key}"),
            kind: ResolveErrorKind::TooManyTrees { count: trees.len() },
        });
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

/// What is wrong with `function`'s `when`, now that its arguments' types are known (a `path`'s
/// from DWARF, a USDT argument's from its note): each condition compares a number, with a value
/// its type can hold.
/// `keep: errors` on a function whose failures nothing tells, or whose return is not probed.
fn keep_problem(function: &Probe) -> Option<ResolveError> {
    let keep = &function.spec.keep;
    if keep.value != Keep::Errors || !function.kind.makes_spans() {
        return None;
    }
    let symbol = function.symbol.to_string();
    let error_when = function
        .spec
        .return_value
        .as_ref()
        .is_some_and(|ret| ret.error_when.is_some());
    let kind = if function.kind.is_entry_only() {
        ResolveErrorKind::KeepErrorsWithoutReturn { symbol }
    } else if !error_when && function.go_error_types.is_none() {
        ResolveErrorKind::KeepErrorsUndecidable { symbol }
    } else {
        return None;
    };
    Some(ResolveError {
        position: keep.position,
        field: format!("keep of `{}`", function.symbol),
        kind,
    })
}

fn when_problems(function: &Probe) -> Vec<ResolveError> {
    let Some(when) = &function.spec.when else {
        return Vec::new();
    };
    function
        .when_tests()
        .into_iter()
        .filter_map(|tested| {
            Some(ResolveError {
                position: when.position,
                field: format!("when.{} of `{}`", tested.name, function.symbol),
                kind: ResolveErrorKind::When {
                    reason: tested.test.err()?,
                },
            })
        })
        .collect()
}

/// A file a target probes, found, and where the config names it.
pub(crate) struct FoundFile {
    pub path: PathBuf,
    pub position: Position,
    /// The key that names it: `probes[0].binary`, `probes[0].executable`.
    pub field: String,
    /// The processes its target is narrowed to.
    pub processes: Option<ProcessTree>,
    /// For a file processes were found running: what tells it apart.
    pub key: Option<FileKey>,
}

/// The processes `target` (at `field`) is narrowed to, by `pid:` or `container:`, and those
/// of them `/proc` shows now.
fn target_processes(
    target: &ProbeTarget,
    field: &str,
) -> Result<Option<(ProcessTree, Vec<u32>)>, ResolveError> {
    if let Some(pid) = &target.pid {
        let Some(nonzero) = NonZeroU32::new(pid.value) else {
            // Validation has refused it already.
            return Ok(None);
        };
        return Ok(Some((ProcessTree::Pid(nonzero), vec![pid.value])));
    }
    let Some(container) = &target.container else {
        return Ok(None);
    };
    let members = processes::container_processes(&container.value);
    if members.roots.is_empty() {
        return Err(ResolveError {
            position: container.position,
            field: format!("{field}.container"),
            kind: ResolveErrorKind::NoContainer {
                id: container.value.clone(),
            },
        });
    }
    let tree = ProcessTree::Container {
        id: container.value.clone(),
        roots: members.roots.into(),
    };
    Ok(Some((tree, members.pids)))
}

/// The files `target` (at `field` of the config) probes: its `binary`, found as the loader
/// would, or the distinct files of the processes running its `executable`.
fn find_files(
    target: &Located<ProbeTarget>,
    base_dir: &Path,
    field: &str,
    processes: Option<(ProcessTree, Vec<u32>)>,
) -> Result<Vec<FoundFile>, ResolveError> {
    let (processes, members) = processes.unzip();
    match target.file() {
        Some(TargetFile::Binary(binary)) => {
            let field = format!("{field}.binary");
            Ok(vec![locate_binary(binary, base_dir, &field, processes)?])
        }
        Some(TargetFile::Executable(executable)) => {
            let library = target.library.as_ref();
            // The file probed is the library's, when one is named.
            let (key, position) = match library {
                Some(library) => ("library", library.position),
                None => ("executable", executable.position),
            };
            let field = format!("{field}.{key}");
            let error = |kind| ResolveError {
                position,
                field: field.clone(),
                kind,
            };
            let search = running::search(executable, library.map(|l| &l.value), members.as_deref())
                .map_err(|source| {
                    error(ResolveErrorKind::Proc {
                        source: Arc::new(source),
                    })
                })?;
            match library {
                _ if !search.files.is_empty() => {}
                Some(library) if !search.without_library.is_empty() => {
                    return Err(error(ResolveErrorKind::NoProcessLoads {
                        library: library.value.to_string(),
                        executable: executable.value.to_string(),
                        processes: search.without_library.len(),
                    }));
                }
                _ => {
                    return Err(error(ResolveErrorKind::NoProcessRuns {
                        executable: executable.value.to_string(),
                        processes: search.processes,
                        unreadable: search.unreadable,
                    }));
                }
            }
            for file in &search.files {
                tracing::info!(
                    executable = %executable.value,
                    file = %file.path.display(),
                    pids = ?file.pids,
                    "found a running executable's {key}"
                );
            }
            Ok(search
                .files
                .into_iter()
                .map(|file| FoundFile {
                    path: file.path,
                    position,
                    field: field.clone(),
                    processes: processes.clone(),
                    key: Some(file.key),
                })
                .collect())
        }
        // Validation has refused it already.
        None => Ok(Vec::new()),
    }
}

/// Where the file `binary` (at `field` of the config) is, found as the loader would.
fn locate_binary(
    binary: &Located<String>,
    base_dir: &Path,
    field: &str,
    processes: Option<ProcessTree>,
) -> Result<FoundFile, ResolveError> {
    match locate::locate(binary, base_dir) {
        Ok(path) => Ok(FoundFile {
            path,
            position: binary.position,
            field: field.to_owned(),
            processes,
            key: None,
        }),
        Err(error) => Err(ResolveError {
            position: binary.position,
            field: field.to_owned(),
            kind: error.into(),
        }),
    }
}

/// Opens `file`, one of `target`'s: found and read once, for the ELF facts, the symbols and
/// the DWARF of every entry.
pub(crate) fn open_target(
    target: &Located<ProbeTarget>,
    file: FoundFile,
    stack_frames: u16,
) -> Result<Target, ResolveError> {
    let FoundFile {
        path,
        position,
        field,
        processes,
        key: _,
    } = file;
    let read = crate::binary::elf::read(&path).and_then(|data| {
        let elf = ElfInfo::parse(&path, &data)?;
        Ok((data, elf, Code::open(&path)?))
    });
    let (data, elf, code) = read.map_err(|e| ResolveError {
        position,
        field: field.clone(),
        kind: e.into(),
    })?;
    Ok(Target {
        binary: Binary::new(path, data, elf, code),
        processes,
        stack_frames,
        follow_goroutines: target.follow_goroutines,
        position,
        field,
        reported: Default::default(),
        frame_pointers: Default::default(),
    })
}

/// Resolves the functions of `config`'s target `t` in `file`, found running after start, with
/// ids from `first_id` on (the count of functions so far), narrowed to `processes` as the
/// target was at start. Handoffs are not resolved again.
pub fn resolve_later(
    config: &Config,
    t: usize,
    file: RunningFile,
    processes: Option<ProcessTree>,
    first_id: usize,
) -> Result<Vec<Probe>, Vec<ResolveError>> {
    let Some(target) = config.probes.get(t) else {
        return Ok(Vec::new());
    };
    let (key, position) = match (&target.library, &target.executable) {
        (Some(library), _) => ("library", library.position),
        (None, executable) => (
            "executable",
            executable.as_ref().map_or(target.position, |e| e.position),
        ),
    };
    let found = FoundFile {
        path: file.path,
        position,
        field: format!("probes[{t}].{key}"),
        processes,
        key: Some(file.key),
    };
    let mut resolved = Resolved {
        first_id,
        ..Resolved::default()
    };
    let mut errors = Vec::new();
    resolve_target(
        target,
        found,
        config.limits.stack_frames,
        &mut resolved,
        &mut errors,
    );
    let later = resolved.functions;
    for function in &later {
        errors.extend(when_problems(function));
        errors.extend(keep_problem(function));
    }
    if errors.is_empty() {
        Ok(later)
    } else {
        Err(errors)
    }
}

/// Resolves `target`'s functions and USDT probes into `resolved`; returns its binary, opened,
/// for its handoffs, or `None` when it cannot be read (the reason is in `errors`).
fn resolve_target(
    target: &Located<ProbeTarget>,
    file: FoundFile,
    stack_frames: u16,
    resolved: &mut Resolved,
    errors: &mut Vec<ResolveError>,
) -> Option<Target> {
    // `probes[0]`, of `probes[0].binary`.
    let field = file
        .field
        .rsplit_once('.')
        .map_or(file.field.as_str(), |(target, _)| target)
        .to_owned();
    let field = field.as_str();
    let binary = match open_target(target, file, stack_frames) {
        Ok(binary) => binary,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let id_base = resolved.first_id;
    let functions = &mut resolved.functions;
    if let (Some(located), Some(ProcessTree::Pid(pid))) = (&target.pid, &binary.processes)
        && let Err(kind) = check_mapped(*pid, &binary.binary.path)
    {
        errors.push(ResolveError {
            position: located.position,
            field: format!("{field}.pid"),
            kind,
        });
    }
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
        let first_id = id_base + functions.len();
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
        let first_pair = u32::try_from(id_base + functions.len()).unwrap_or(u32::MAX) + 1;
        let usdt = kind::usdt::probes(&binary, &target.usdt, field, first_pair, errors);
        functions.extend(usdt);
    }
    Some(binary)
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
