//! Stacks of code built without frame pointers, unwound in userspace: from the registers a
//! walk starts from and a copy of the stack taken at a function's entry, with the unwind
//! tables (`.eh_frame`, else `.debug_frame`) of the files the process maps, by framehop. Each
//! file's tables are read once, however many processes map it; each process's modules once,
//! again when an address falls outside them (a library loaded since).

use std::{
    collections::HashMap,
    ops::Range,
    path::{Path, PathBuf},
    sync::Arc,
};

use framehop::{
    ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder as _,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};
use object::{Object as _, ObjectSection as _, ObjectSegment as _};

/// Where a walk starts: the registers at the function's entry, and the stack from RSP up.
#[derive(Debug, Clone, Copy)]
pub struct StackWindow<'a> {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    /// The stack's bytes from `sp` on, as far as they were copied.
    pub bytes: &'a [u8],
}

/// What a walk found: the function's own address, then the return addresses, innermost
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwound {
    pub addresses: Vec<u64>,
    /// The walk stopped before the stack's end: it left the copied window, met code it could
    /// not unwind, or reached the frame limit.
    pub truncated: bool,
}

/// The probed function's file and its file offset: where a process that is gone when its
/// window is unwound mapped the probed binary is told by the entry address, its one known
/// place.
#[derive(Debug, Clone, Copy)]
pub struct ProbedFile<'a> {
    pub path: &'a Path,
    pub file_offset: u64,
}

/// Unwinds the stacks of any number of processes.
#[derive(Default)]
pub struct Unwinders {
    processes: HashMap<u32, ProcessModules>,
    /// Each file's tables, read once: `None` for one that could not be read. By device and
    /// inode, since processes in other mount namespaces see other files at the same paths.
    tables: HashMap<FileId, Option<Arc<UnwindTables>>>,
    cache: CacheX86_64,
}

impl std::fmt::Debug for Unwinders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unwinders")
            .field("processes", &self.processes.len())
            .field("files", &self.tables.len())
            .finish_non_exhaustive()
    }
}

/// One process's unwinder, and the address ranges of the modules it holds.
struct ProcessModules {
    unwinder: UnwinderX86_64<Arc<[u8]>>,
    ranges: Vec<Range<u64>>,
}

impl ProcessModules {
    fn covers(&self, address: u64) -> bool {
        self.ranges.iter().any(|range| range.contains(&address))
    }
}

impl Unwinders {
    /// The stack of process `pid` from `window`, at most `limit` addresses; `window.ip` is in
    /// `probed`.
    pub fn unwind(
        &mut self,
        pid: u32,
        window: &StackWindow<'_>,
        limit: usize,
        probed: ProbedFile<'_>,
    ) -> Unwound {
        let stale = self
            .processes
            .get(&pid)
            .is_none_or(|process| !process.covers(window.ip));
        if stale {
            match self.read_modules(pid) {
                Some(process) => {
                    self.processes.insert(pid, process);
                }
                // Gone already (its windows are read in batches): its stack is unwound
                // through the probed binary's frames, and ends where they do.
                None => {
                    let process = self.probed_only(probed, window.ip);
                    return walk(&process.unwinder, &mut self.cache, window, limit);
                }
            }
        }
        let Some(process) = self.processes.get(&pid) else {
            return Unwound {
                addresses: vec![window.ip],
                truncated: true,
            };
        };
        walk(&process.unwinder, &mut self.cache, window, limit)
    }

    /// The probed binary alone, placed by the entry address `ip` of its function at
    /// `probed.file_offset`.
    fn probed_only(&mut self, probed: ProbedFile<'_>, ip: u64) -> ProcessModules {
        let mut process = ProcessModules {
            unwinder: UnwinderX86_64::new(),
            ranges: Vec::new(),
        };
        let Some(tables) = FileId::of(probed.path).and_then(|id| self.tables_of(id, probed.path))
        else {
            return process;
        };
        let (Some(bias), Some(span)) = (
            tables.load_bias(ip, probed.file_offset),
            tables.address_span(),
        ) else {
            return process;
        };
        let range = span.start.wrapping_add(bias)..span.end.wrapping_add(bias);
        process.unwinder.add_module(Module::new(
            probed.path.display().to_string(),
            range.clone(),
            bias,
            tables.section_info(),
        ));
        process.ranges.push(range);
        process
    }

    /// The tables of file `id`, at `path` as spanprobe sees it, read once.
    fn tables_of(&mut self, id: FileId, path: &Path) -> Option<Arc<UnwindTables>> {
        self.tables
            .entry(id)
            .or_insert_with(|| UnwindTables::read(path).map(Arc::new))
            .clone()
    }

    /// Forgets processes `pids`, which have exited.
    pub fn forget(&mut self, pids: &[u32]) {
        for pid in pids {
            self.processes.remove(pid);
        }
    }

    /// The modules process `pid` maps now, from its `maps`; `None` when it is gone.
    fn read_modules(&mut self, pid: u32) -> Option<ProcessModules> {
        let mut process = ProcessModules {
            unwinder: UnwinderX86_64::new(),
            ranges: Vec::new(),
        };
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        for file in mapped_files(&maps) {
            // Through the process's own view of the file: the path may mean another file in
            // spanprobe's mount namespace, or none.
            let path = PathBuf::from(format!("/proc/{pid}/root{}", file.path.display()));
            let Some(tables) = self.tables_of(file.id, &path) else {
                continue;
            };
            let Some(base) = tables.load_bias(file.first_start, file.first_offset) else {
                continue;
            };
            process.unwinder.add_module(Module::new(
                file.path.display().to_string(),
                file.range.clone(),
                base,
                tables.section_info(),
            ));
            process.ranges.push(file.range);
        }
        Some(process)
    }
}

/// Walks `window` with `unwinder`'s modules.
fn walk(
    unwinder: &UnwinderX86_64<Arc<[u8]>>,
    cache: &mut CacheX86_64,
    window: &StackWindow<'_>,
    limit: usize,
) -> Unwound {
    let mut read_stack = |address: u64| -> Result<u64, ()> {
        let at = usize::try_from(address.checked_sub(window.sp).ok_or(())?).map_err(|_| ())?;
        let word = window
            .bytes
            .get(at..at.checked_add(8).ok_or(())?)
            .ok_or(())?;
        Ok(u64::from_le_bytes(word.try_into().map_err(|_| ())?))
    };
    let regs = UnwindRegsX86_64::new(window.ip, window.sp, window.bp);
    let mut frames = unwinder.iter_frames(window.ip, regs, cache, &mut read_stack);
    let mut addresses = Vec::new();
    loop {
        if addresses.len() >= limit {
            return Unwound {
                addresses,
                truncated: true,
            };
        }
        match frames.next() {
            Ok(Some(FrameAddress::InstructionPointer(ip))) => addresses.push(ip),
            Ok(Some(FrameAddress::ReturnAddress(address))) => addresses.push(address.get()),
            // The tables say the stack ends here (`_start`, a thread's start).
            Ok(None) => {
                return Unwound {
                    addresses,
                    truncated: false,
                };
            }
            // Out of the window, or code no table or frame pointer unwinds: what was found
            // is right, and ends short.
            Err(_) => {
                return Unwound {
                    addresses,
                    truncated: true,
                };
            }
        }
    }
}

/// Which file: its device (major, minor) and inode, as `maps` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileId {
    major: u32,
    minor: u32,
    inode: u64,
}

impl FileId {
    /// The file at `path`.
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = std::fs::metadata(path).ok()?;
        let dev = metadata.dev();
        Some(Self {
            major: libc::major(dev),
            minor: libc::minor(dev),
            inode: metadata.ino(),
        })
    }

    /// From `maps`' `dev` (`fe:01`, hexadecimal) and `inode` fields.
    fn parse(dev: &str, inode: &str) -> Option<Self> {
        let (major, minor) = dev.split_once(':')?;
        Some(Self {
            major: u32::from_str_radix(major, 16).ok()?,
            minor: u32::from_str_radix(minor, 16).ok()?,
            inode: inode.parse().ok()?,
        })
    }
}

/// A file a process maps: where its mappings are, and the first one's place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MappedFile {
    id: FileId,
    path: PathBuf,
    range: Range<u64>,
    first_start: u64,
    first_offset: u64,
}

/// The files `maps` (a `/proc/PID/maps`) lists, each once, with the span of its mappings.
fn mapped_files(maps: &str) -> Vec<MappedFile> {
    let mut files: Vec<MappedFile> = Vec::new();
    for line in maps.lines() {
        // `start-end perms offset dev inode path`
        let mut fields = line.split_whitespace();
        let (Some(range), Some(_perms), Some(offset), Some(dev), Some(inode)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let path: String = fields.collect::<Vec<_>>().join(" ");
        // Anonymous memory, the stack, the vDSO: no file to read tables from.
        if inode == "0" || !path.starts_with('/') {
            continue;
        }
        let (Some((start, end)), Ok(offset), Some(id)) = (
            range
                .split_once('-')
                .and_then(|(s, e)| Some((hex(s)?, hex(e)?))),
            u64::from_str_radix(offset, 16),
            FileId::parse(dev, inode),
        ) else {
            continue;
        };
        match files.iter_mut().find(|file| file.id == id) {
            Some(file) => {
                file.range.start = file.range.start.min(start);
                file.range.end = file.range.end.max(end);
            }
            None => files.push(MappedFile {
                id,
                path: PathBuf::from(path),
                range: start..end,
                first_start: start,
                first_offset: offset,
            }),
        }
    }
    files
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 16).ok()
}

/// What framehop needs of one ELF file: its unwind sections, where the file places them,
/// and its loadable segments, to tell where a process loaded it.
#[derive(Debug)]
struct UnwindTables {
    eh_frame: Option<(Range<u64>, Arc<[u8]>)>,
    eh_frame_hdr: Option<(Range<u64>, Arc<[u8]>)>,
    debug_frame: Option<Arc<[u8]>>,
    text: Option<Range<u64>>,
    got: Option<Range<u64>>,
    /// Each loadable segment's file offset and virtual address.
    segments: Vec<(Range<u64>, u64)>,
}

impl UnwindTables {
    fn read(path: &Path) -> Option<Self> {
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        let range = |name: &str| {
            file.section_by_name(name)
                .map(|s| s.address()..s.address() + s.size())
        };
        let bytes = |name: &str| -> Option<Arc<[u8]>> {
            let section = file.section_by_name(name)?;
            Some(Arc::from(&*section.uncompressed_data().ok()?))
        };
        let with_range = |name: &str| Some((range(name)?, bytes(name)?));
        let segments = file
            .segments()
            .map(|segment| {
                let (offset, size) = segment.file_range();
                (offset..offset + size, segment.address())
            })
            .collect();
        Some(Self {
            eh_frame: with_range(".eh_frame"),
            eh_frame_hdr: with_range(".eh_frame_hdr"),
            debug_frame: bytes(".debug_frame"),
            text: range(".text"),
            got: range(".got"),
            segments,
        })
    }

    /// Where a process that maps the file's `offset` at `start` loaded it: what is added to
    /// the file's addresses (0 for an executable that is not position-independent).
    fn load_bias(&self, start: u64, offset: u64) -> Option<u64> {
        let (file_range, address) = self
            .segments
            .iter()
            .find(|(file_range, _)| file_range.contains(&offset) || file_range.start == offset)?;
        let in_file = offset - file_range.start;
        Some(start.wrapping_sub(address.wrapping_add(in_file)))
    }

    /// The addresses the file's loadable segments span, unrelocated.
    fn address_span(&self) -> Option<Range<u64>> {
        let start = self.segments.iter().map(|(_, address)| *address).min()?;
        let end = self
            .segments
            .iter()
            .map(|(file_range, address)| address + (file_range.end - file_range.start))
            .max()?;
        Some(start..end)
    }

    fn section_info(&self) -> ExplicitModuleSectionInfo<Arc<[u8]>> {
        let (eh_frame_svma, eh_frame) = split(&self.eh_frame);
        let (eh_frame_hdr_svma, eh_frame_hdr) = split(&self.eh_frame_hdr);
        ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: self.text.clone(),
            got_svma: self.got.clone(),
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            debug_frame: self.debug_frame.clone(),
            ..ExplicitModuleSectionInfo::default()
        }
    }
}

fn split(section: &Option<(Range<u64>, Arc<[u8]>)>) -> (Option<Range<u64>>, Option<Arc<[u8]>>) {
    match section {
        Some((range, data)) => (Some(range.clone()), Some(data.clone())),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_file_once_with_the_span_of_its_mappings() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fe:01 1234 /usr/bin/app
55d0c0001000-55d0c0005000 r-xp 00001000 fe:01 1234 /usr/bin/app
55d0c0100000-55d0c0121000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000028000 r--p 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000028000-7f00001bd000 r-xp 00028000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000300000-7f0000301000 rw-p 00000000 fe:01 7 /tmp/a file with spaces
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";
        let files = mapped_files(maps);
        let summary: Vec<(&str, Range<u64>, u64)> = files
            .iter()
            .map(|f| (f.path.to_str().unwrap(), f.range.clone(), f.first_offset))
            .collect();
        assert_eq!(
            summary,
            [
                ("/usr/bin/app", 0x55d0c0000000..0x55d0c0005000, 0),
                (
                    "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    0x7f0000000000..0x7f00001bd000,
                    0
                ),
                ("/tmp/a file with spaces", 0x7f0000300000..0x7f0000301000, 0),
            ]
        );
    }

    /// This test's own stack, from a function two calls deep: the walk passes both callers,
    /// and ends short when the window is cut.
    #[test]
    fn unwinds_a_live_stack_through_its_callers() {
        let (window_bytes, ip, sp, bp) = outer_caller();
        let window = StackWindow {
            ip,
            sp,
            bp,
            bytes: &window_bytes,
        };
        let mut unwinders = Unwinders::default();
        let pid = std::process::id();
        let whole = unwinders.unwind(
            pid,
            &window,
            64,
            ProbedFile {
                path: Path::new("/proc/self/exe"),
                file_offset: 0,
            },
        );
        let callers =
            [inner_caller as fn() -> _, outer_caller as fn() -> _].map(|f| f as usize as u64);
        // Each return address falls inside its caller, just past the call.
        for (i, caller) in callers.into_iter().enumerate() {
            let address = whole.addresses[i + 1];
            assert!(
                address > caller && address < caller + 4096,
                "frame {}: {address:#x} not in the caller at {caller:#x}: {whole:x?}",
                i + 1
            );
        }
        assert!(whole.addresses.len() > 3, "{whole:x?}");

        let cut = StackWindow {
            bytes: &window_bytes[..16],
            ..window
        };
        let short = unwinders.unwind(
            pid,
            &cut,
            64,
            ProbedFile {
                path: Path::new("/proc/self/exe"),
                file_offset: 0,
            },
        );
        assert!(short.truncated, "{short:x?}");
        assert!(short.addresses.len() < whole.addresses.len());
        assert_eq!(short.addresses[0], ip);
        let limited = unwinders.unwind(
            pid,
            &window,
            2,
            ProbedFile {
                path: Path::new("/proc/self/exe"),
                file_offset: 0,
            },
        );
        assert_eq!(limited.addresses, whole.addresses[..2]);
        assert!(limited.truncated);
    }

    #[inline(never)]
    fn outer_caller() -> (Vec<u8>, u64, u64, u64) {
        std::hint::black_box(inner_caller())
    }

    #[inline(never)]
    fn inner_caller() -> (Vec<u8>, u64, u64, u64) {
        std::hint::black_box(capture())
    }

    /// The registers where it runs, and the stack from RSP up.
    #[inline(never)]
    fn capture() -> (Vec<u8>, u64, u64, u64) {
        // Not the entry's registers: the walk starts here, inside `capture`, whose own frame
        // the tables describe as well.
        let (ip, sp, bp): (u64, u64, u64);
        // SAFETY: reads two registers and the address of the next instruction.
        unsafe {
            std::arch::asm!(
                "lea {}, [rip]",
                "mov {}, rsp",
                "mov {}, rbp",
                out(reg) ip,
                out(reg) sp,
                out(reg) bp,
            );
        }
        // The stack above RSP, within this thread's stack: 8 KiB is well inside a test
        // thread's 2 MiB.
        let len = 8192;
        // SAFETY: the range lies in this thread's mapped stack, above the current frame.
        let bytes = unsafe { std::slice::from_raw_parts(sp as *const u8, len) }.to_vec();
        (bytes, ip, sp, bp)
    }
}
