//! Captured user stacks to readable text with blazesym: demangled names, file:line (inlined
//! frames included) where there is DWARF, module+offset where there are no symbols. Each
//! distinct (file, offset) is symbolized once, and each distinct stack of a live process is
//! written once: a function's calls come from a few call sites, so most stacks repeat.

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use blazesym::{
    Pid,
    normalize::{Normalizer, UserMeta},
    symbolize::{Input, Symbolized, Symbolizer, source::Elf, source::Source},
};

use crate::binary::{
    debug_file::{DEBUG_ROOT, SeparateDebug},
    elf::ElfInfo,
    symbols::demangle,
};

/// Distinct (file, offset) symbolizations, and (pid, address) places, kept at most; each
/// cache is emptied when full.
const MAX_CACHED: usize = 65_536;

/// Whole stacks kept at most (each up to a few KB of text); emptied when full.
const MAX_CACHED_STACKS: usize = 4_096;

/// Functions where a complete user stack ends: a walk that stops elsewhere was cut short. A
/// goroutine's stack ends at `runtime.goexit` (the main goroutine's too, below `runtime.main`).
const STACK_ROOTS: [&str; 7] = [
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "clone",
    "clone3",
    "runtime.goexit",
];

/// A symbolized stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stacktrace {
    /// One frame per line, innermost first. Shared: a repeated stack is the same text.
    pub text: Arc<str>,
    /// The walk stopped before reaching a thread's or program's start (e.g. code without frame
    /// pointers), or at the frame limit.
    pub truncated: bool,
}

/// Where the probed function is, for symbolizing frames of processes that are already gone:
/// addresses in the same file are placed by their distance from the function's entry.
#[derive(Debug, Clone, Copy)]
pub struct ProbedAt<'a> {
    pub binary: &'a Path,
    pub file_offset: u64,
    pub elf: Option<&'a ElfInfo>,
}

/// Symbolizes stacks, with caches that keep repeated frames cheap.
#[derive(Default)]
pub struct Backtraces {
    symbolizer: Symbolizer,
    normalizer: Normalizer,
    frames: HashMap<(PathBuf, u64), Vec<String>>,
    /// Each stripped binary's debug file, looked up once per binary (see [`SeparateDebug`]).
    debug_files: HashMap<PathBuf, Option<SeparateDebug>>,
    /// Where each (pid, address) was found: normalizing asks the process's mappings, which
    /// costs far more than a lookup, and a process's code does not move.
    places: HashMap<(u32, u64), Option<(PathBuf, u64)>>,
    /// Whole stacks placed by live processes' mappings, as symbolized: a repeated stack costs
    /// one lookup, where placing and joining its frames again allocated for each.
    stacks: hashbrown::HashMap<StackKey, Stacktrace, foldhash::fast::RandomState>,
}

/// A stack as [`Backtraces::symbolize`] is asked for it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StackKey {
    pid: u32,
    limit: usize,
    addresses: Box<[u64]>,
}

/// A [`StackKey`] to look up, borrowing its addresses. Hashes as the key does (a boxed slice
/// hashes as the slice).
#[derive(Hash)]
struct StackRef<'a> {
    pid: u32,
    limit: usize,
    addresses: &'a [u64],
}

impl hashbrown::Equivalent<StackKey> for StackRef<'_> {
    fn equivalent(&self, key: &StackKey) -> bool {
        self.pid == key.pid && self.limit == key.limit && *self.addresses == *key.addresses
    }
}

/// Reads each process's mappings once: a process's code does not move.
fn normalizer() -> Normalizer {
    Normalizer::builder().enable_vma_caching(true).build()
}

impl std::fmt::Debug for Backtraces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backtraces")
            .field("frames", &self.frames.len())
            .field("places", &self.places.len())
            .field("stacks", &self.stacks.len())
            .finish_non_exhaustive()
    }
}

impl Backtraces {
    pub fn new() -> Self {
        Self {
            symbolizer: Symbolizer::builder()
                // Names are demangled by `symbols::demangle`, as `check` and `symbols` show them.
                .enable_demangling(false)
                // Where `probe::debug_file` finds no debug file, blazesym still follows a
                // debug link: let it look in the same directory.
                .set_debug_dirs(Some([DEBUG_ROOT]))
                .build(),
            normalizer: normalizer(),
            frames: HashMap::new(),
            debug_files: HashMap::new(),
            places: HashMap::new(),
            stacks: hashbrown::HashMap::default(),
        }
    }

    /// `addresses` of process `pid`, innermost first; `limit` is the most frames the walk
    /// could return.
    pub fn symbolize(
        &mut self,
        pid: u32,
        addresses: &[u64],
        limit: usize,
        probed: ProbedAt<'_>,
    ) -> Stacktrace {
        let key = StackRef {
            pid,
            limit,
            addresses,
        };
        if let Some(stack) = self.stacks.get(&key) {
            return stack.clone();
        }
        let (stack, from_mappings) = self.symbolize_uncached(pid, addresses, limit, probed);
        // As for places: what a process that is gone was guessed to run is not kept.
        if from_mappings {
            if self.stacks.len() >= MAX_CACHED_STACKS {
                self.stacks.clear();
            }
            self.stacks.insert(
                StackKey {
                    pid,
                    limit,
                    addresses: addresses.into(),
                },
                stack.clone(),
            );
        }
        stack
    }

    /// Forgets what was found in the mappings of processes `pids`, which have exited: a later
    /// process given one of their pids maps other files.
    pub fn forget(&mut self, pids: &[u32]) {
        let gone: std::collections::HashSet<u32, foldhash::fast::RandomState> =
            pids.iter().copied().collect();
        self.places.retain(|(pid, _), _| !gone.contains(pid));
        self.stacks.retain(|key, _| !gone.contains(&key.pid));
        // The normalizer keeps every process's mappings it read, and cannot drop one: a new
        // one reads again those of the processes still running, once each.
        self.normalizer = normalizer();
    }

    /// [`Self::symbolize`] frame by frame; also says whether every frame was placed by the
    /// live process's mappings.
    fn symbolize_uncached(
        &mut self,
        pid: u32,
        addresses: &[u64],
        limit: usize,
        probed: ProbedAt<'_>,
    ) -> (Stacktrace, bool) {
        // Return addresses point after their call instruction, often at the next source line:
        // look up the byte before, inside the call, as debuggers do. The first address is the
        // probed function's own entry.
        let lookups: Vec<u64> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| if i == 0 { *a } else { a.saturating_sub(1) })
            .collect();
        let (places, from_mappings) = self.cached_places(pid, &lookups, probed);
        let mut text = String::new();
        let mut last = String::new();
        for (address, place) in addresses.iter().zip(places) {
            let lines = match place {
                Some((file, offset)) => self.frame(&file, offset),
                None => vec![format!("{address:#x}")],
            };
            for line in lines {
                last.clone_from(&line);
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&line);
            }
        }
        let ends_at_root = STACK_ROOTS
            .iter()
            .any(|root| last.starts_with(&format!("{root} ")) || last == *root);
        // The walk returns the function and its frames after the caller: `limit` in all.
        let truncated = !ends_at_root || addresses.len() > limit;
        let stack = Stacktrace {
            text: text.into(),
            truncated,
        };
        (stack, from_mappings)
    }

    /// [`Self::places`], remembered per process and address. (Only places the mappings gave
    /// are remembered, so a complete hit says the mappings were used.)
    fn cached_places(
        &mut self,
        pid: u32,
        addresses: &[u64],
        probed: ProbedAt<'_>,
    ) -> (Vec<Option<(PathBuf, u64)>>, bool) {
        if addresses
            .iter()
            .all(|a| self.places.contains_key(&(pid, *a)))
        {
            let places = addresses
                .iter()
                .map(|a| self.places[&(pid, *a)].clone())
                .collect();
            return (places, true);
        }
        let (places, from_mappings) = self.places(pid, addresses, probed);
        if self.places.len() >= MAX_CACHED {
            self.places.clear();
        }
        // Only what the live process's mappings said is worth keeping: a guess from the probed
        // function is redone (cheaply) each time.
        if from_mappings {
            for (address, place) in addresses.iter().zip(&places) {
                self.places.insert((pid, *address), place.clone());
            }
        }
        (places, from_mappings)
    }

    /// The file and file offset of each address, from the live process's mappings, or by
    /// distance from the probed function when the process is gone. Also says whether the
    /// mappings were used.
    fn places(
        &self,
        pid: u32,
        addresses: &[u64],
        probed: ProbedAt<'_>,
    ) -> (Vec<Option<(PathBuf, u64)>>, bool) {
        if let Ok(output) = self
            .normalizer
            .normalize_user_addrs(Pid::from(pid), addresses)
        {
            let places = output
                .outputs
                .iter()
                .map(|(offset, meta)| match output.meta.get(*meta) {
                    Some(UserMeta::Elf(elf)) => Some((elf.path.clone(), *offset)),
                    _ => None,
                })
                .collect();
            return (places, true);
        }
        let Some(&function) = addresses.first() else {
            return (Vec::new(), false);
        };
        let places = addresses
            .iter()
            .map(|address| {
                let offset = if *address >= function {
                    probed.file_offset.checked_add(address - function)
                } else {
                    probed.file_offset.checked_sub(function - address)
                }?;
                probed
                    .elf
                    .is_none_or(|elf| elf.offset_is_code(offset))
                    .then(|| (probed.binary.to_owned(), offset))
            })
            .collect();
        (places, false)
    }

    /// The lines of one frame: inlined functions first, innermost first, then the function.
    fn frame(&mut self, file: &Path, offset: u64) -> Vec<String> {
        if self.frames.len() >= MAX_CACHED {
            self.frames.clear();
        }
        let key = (file.to_owned(), offset);
        if let Some(lines) = self.frames.get(&key) {
            return lines.clone();
        }
        let lines = self.symbolize_one(file, offset);
        self.frames.insert(key, lines.clone());
        lines
    }

    fn symbolize_one(&mut self, file: &Path, offset: u64) -> Vec<String> {
        let module = || {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            format!("{name}+{offset:#x}")
        };
        // A stripped binary is symbolized by its debug file, found as `symbols` and `init`
        // find it, at the address both share: blazesym's own search misses `.debug/` beside
        // the binary and a binary with a build-id but no debug link.
        let debug = self
            .debug_files
            .entry(file.to_owned())
            .or_insert_with(|| SeparateDebug::of(file));
        let symbolized = match debug.as_ref().and_then(|d| Some((d, d.address(offset)?))) {
            Some((debug, address)) => self.symbolizer.symbolize(
                &Source::Elf(Elf::new(&debug.path)),
                Input::VirtOffset(&[address]),
            ),
            None => self
                .symbolizer
                .symbolize(&Source::Elf(Elf::new(file)), Input::FileOffset(&[offset])),
        };
        let Ok(Some(Symbolized::Sym(sym))) = symbolized.map(|mut s| s.pop()) else {
            return vec![module()];
        };
        let location = |info: Option<&blazesym::symbolize::CodeInfo<'_>>| match info {
            Some(info) => {
                let path = info.to_path();
                match info.line {
                    Some(line) => format!("{}:{line}", path.display()),
                    None => path.display().to_string(),
                }
            }
            None => module(),
        };
        let mut lines = Vec::with_capacity(sym.inlined.len() + 1);
        // blazesym lists inlined calls outermost first; the innermost runs first on the stack.
        for inlined in sym.inlined.iter().rev() {
            let mut line = String::new();
            let _ = write!(
                line,
                "{} ({}) [inlined]",
                inlined.name,
                location(inlined.code_info.as_ref())
            );
            lines.push(line);
        }
        lines.push(format!(
            "{} ({})",
            demangle(&sym.name),
            location(sym.code_info.as_deref())
        ));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code addresses of this test process: placed by its live mappings.
    fn own_stack() -> [u64; 2] {
        [
            Backtraces::new as fn() -> Backtraces as usize as u64,
            own_stack as fn() -> [u64; 2] as usize as u64 + 1,
        ]
    }

    fn probed(binary: &Path) -> ProbedAt<'_> {
        ProbedAt {
            binary,
            file_offset: 0x1000,
            elf: None,
        }
    }

    #[test]
    fn a_repeated_stack_of_a_live_process_is_written_once() {
        let exe = std::env::current_exe().unwrap();
        let mut stacks = Backtraces::new();
        let pid = std::process::id();
        let first = stacks.symbolize(pid, &own_stack(), 32, probed(&exe));
        assert!(first.text.contains("Backtraces>::new"), "{}", first.text);
        assert_eq!(first.text.lines().count(), 2, "{}", first.text);
        let again = stacks.symbolize(pid, &own_stack(), 32, probed(&exe));
        assert!(Arc::ptr_eq(&first.text, &again.text));
        // The frame limit is part of what is asked.
        let limited = stacks.symbolize(pid, &own_stack(), 1, probed(&exe));
        assert_eq!(limited.text, first.text);
        assert!(!Arc::ptr_eq(&first.text, &limited.text));
        // Another process's stack at the same addresses is its own.
        let other = stacks.symbolize(u32::MAX, &own_stack(), 32, probed(&exe));
        assert!(!Arc::ptr_eq(&first.text, &other.text));
        // Once the process is gone, its pid may name another.
        stacks.forget(&[pid]);
        assert!(stacks.stacks.is_empty() && stacks.places.is_empty());
        let anew = stacks.symbolize(pid, &own_stack(), 32, probed(&exe));
        assert_eq!(anew, first);
        assert!(!Arc::ptr_eq(&first.text, &anew.text));
    }

    #[test]
    fn a_stack_of_a_process_that_is_gone_is_placed_anew_each_time() {
        let binary = Path::new("/nonexistent/gone");
        let mut stacks = Backtraces::new();
        let addresses = [0x5000_0000_1000, 0x5000_0000_1100];
        let first = stacks.symbolize(u32::MAX, &addresses, 32, probed(binary));
        assert_eq!(&*first.text, "gone+0x1000\ngone+0x10ff");
        let again = stacks.symbolize(u32::MAX, &addresses, 32, probed(binary));
        assert_eq!(first, again);
        assert!(!Arc::ptr_eq(&first.text, &again.text));
        assert!(stacks.stacks.is_empty());
    }
}
