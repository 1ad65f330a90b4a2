//! Files of `executable:` targets that processes start running after spanprobe did: the
//! kernel tells of every program started ([`ExecNotice`](spanprobe_common::ExecNotice)), and
//! the process is looked at as at start. A file already probed needs nothing: its uprobes fire
//! in every process that runs it.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use spanprobe_config::{Config, Unwind};

use crate::plan::{
    probe::Probe,
    processes::{ProcessTree, in_container},
    running::{self, FileKey, RunningFile},
};

/// Function ids kept free at load for the files found later, when a target looks for them:
/// the function table is sized at load.
pub const LATER_FUNCTIONS: u32 = 1024;

/// What the programs loaded at start leave room for: the files found later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Room {
    /// Function ids kept free in the function table.
    pub functions: u32,
    /// Set when some target found no process running at start: what its functions need is
    /// not known, so the programs are built for anything they may need, with stack windows of
    /// up to these bytes.
    pub unknown: Option<u32>,
}

/// The room to leave for `config`: none unless a target names processes by their executable;
/// `waiting` when some such target found no process.
pub fn room(config: &Config, waiting: bool) -> Room {
    let executables = config
        .probes
        .iter()
        .filter(|target| target.executable.is_some());
    let window_bytes = executables
        .clone()
        .flat_map(|target| &target.functions)
        .filter_map(|function| function.stack.value.options())
        .filter(|options| options.unwind != Unwind::FramePointers)
        .map(|options| options.bytes)
        .max()
        .unwrap_or(0);
    match executables.count() {
        0 => Room::default(),
        _ => Room {
            functions: LATER_FUNCTIONS,
            unknown: waiting.then_some(window_bytes),
        },
    }
}

/// A file found running that no target probed yet.
#[derive(Debug)]
pub struct NewFile {
    /// The target (`probes[t]`) it is of.
    pub target: usize,
    pub file: RunningFile,
    /// The processes the target is narrowed to, as at start.
    pub processes: Option<ProcessTree>,
}

/// How often, and how many times, a process that runs an executable whose `library:` it has
/// not loaded yet is looked at again: the dynamic loader maps a program's libraries within
/// milliseconds of its start, after the exec notice.
const RETRIES: [Duration; 6] = [
    Duration::from_millis(2),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_secs(1),
];

/// How many times a file whose processes exited before it was probed is tried again.
const MAX_RETRIES: u8 = 3;

/// What is probed already, and which targets look for more.
#[derive(Debug)]
pub struct Watch {
    /// Each target's files, probed or being probed.
    known: HashSet<(usize, FileKey)>,
    /// Files of a target tried again after their processes exited before they were probed,
    /// and how often: a file is retried a few times, as each try takes function ids.
    retried: HashMap<(usize, FileKey), u8>,
    /// Processes to look at again, when, and how many times they were.
    again: Vec<(u32, Instant, usize)>,
}

impl Watch {
    /// Knowing the files `running` found at start, by target.
    pub fn new(running: &[(usize, FileKey)]) -> Self {
        Self {
            known: running.iter().copied().collect(),
            again: Vec::new(),
            retried: HashMap::new(),
        }
    }

    /// Forgets file `key`, which could not be probed: the next process that runs it tries
    /// again (the one that did may have exited before its probes went in).
    pub fn forget(&mut self, target: usize, key: FileKey) {
        let tries = self.retried.entry((target, key)).or_default();
        if *tries < MAX_RETRIES {
            *tries += 1;
            self.known.remove(&(target, key));
        }
    }

    /// When a process is next to be looked at again, if one is.
    pub fn next_look(&self) -> Option<Instant> {
        self.again.iter().map(|&(_, at, _)| at).min()
    }

    /// The new files of the processes due to be looked at again (see [`Watch::look_at`]).
    pub fn look_again(&mut self, config: &Config, functions: &[Probe]) -> Vec<NewFile> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) =
            self.again.drain(..).partition(|&(_, at, _)| at <= now);
        self.again = later;
        let mut found = Vec::new();
        for (pid, _, looks) in due {
            found.extend(self.look(config, Some(pid), functions, looks));
        }
        found
    }

    /// The new files of `config`'s targets that process `pid` runs or has loaded (every
    /// process's, when `None`), each now known. `functions` are those probed so far, whose
    /// process trees the new files' functions share.
    pub fn look_at(
        &mut self,
        config: &Config,
        pid: Option<u32>,
        functions: &[Probe],
    ) -> Vec<NewFile> {
        self.look(config, pid, functions, 0)
    }

    /// [`Watch::look_at`], the `looks`th time for `pid`: a process that runs a target's
    /// executable without its library is looked at again later.
    fn look(
        &mut self,
        config: &Config,
        pid: Option<u32>,
        functions: &[Probe],
        looks: usize,
    ) -> Vec<NewFile> {
        let mut found = Vec::new();
        // A process that runs some target's executable without its library yet.
        let mut look_again = false;
        for (t, target) in config.probes.iter().enumerate() {
            let Some(executable) = &target.executable else {
                continue;
            };
            if let (Some(only), Some(pid)) = (&target.pid, pid)
                && only.value != pid
            {
                continue;
            }
            let processes = tree_of(target, functions);
            if target.container.is_some() && processes.is_none() {
                continue;
            }
            let only = match (&processes, pid) {
                (Some(ProcessTree::Container { id, .. }), Some(pid)) => {
                    if !in_container(pid, id) {
                        continue;
                    }
                    Some(vec![pid])
                }
                (Some(ProcessTree::Pid(root)), _) => Some(vec![root.get()]),
                (_, pid) => pid.map(|pid| vec![pid]),
            };
            let library = target.library.as_ref().map(|library| &library.value);
            let Ok(search) = running::search(executable, library, only.as_deref()) else {
                continue;
            };
            look_again |= pid.is_some_and(|pid| search.without_library.contains(&pid));
            for file in search.files {
                if self.known.insert((t, file.key)) {
                    found.push(NewFile {
                        target: t,
                        file,
                        processes: processes.clone(),
                    });
                }
            }
        }
        if let (true, Some(pid), Some(wait)) = (look_again, pid, RETRIES.get(looks)) {
            self.again.push((pid, Instant::now() + *wait, looks + 1));
        }
        found
    }
}

/// The tree the target's functions were narrowed to at start, found among `functions`.
fn tree_of(target: &spanprobe_config::ProbeTarget, functions: &[Probe]) -> Option<ProcessTree> {
    let trees = || {
        functions
            .iter()
            .filter_map(|function| function.processes.as_ref())
    };
    if let Some(pid) = &target.pid {
        return trees()
            .find(|tree| matches!(tree, ProcessTree::Pid(root) if root.get() == pid.value))
            .cloned();
    }
    let container = target.container.as_ref()?;
    trees()
        .find(|tree| matches!(tree, ProcessTree::Container { id, .. } if *id == container.value))
        .cloned()
}
