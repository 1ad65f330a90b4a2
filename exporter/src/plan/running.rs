//! The files running processes execute, or the libraries they loaded, for `executable:`
//! targets, found through `/proc` in every mount namespace spanprobe can see. A program in a container is at a path of its own
//! mount namespace; `/proc/PID/root` reaches into that namespace, so the file is opened, read
//! and probed through it. Uprobes belong to files, not processes: one attachment per distinct
//! file serves every process that runs it, and every process that runs it later.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashSet},
    ffi::OsStr,
    io,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Component, Path, PathBuf},
};

use spanprobe_config::ProcessFile;

use crate::kernel::process_tree;

/// A file some processes execute, or have loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningFile {
    /// Where spanprobe opens it: through the first process's root (`/proc/PID/root/PATH`),
    /// else by a path of spanprobe's own namespace (a chroot's), or an executable by its
    /// `/proc/PID/exe`.
    pub path: PathBuf,
    /// The processes running it, by their pid in spanprobe's pid namespace, lowest first.
    pub pids: Vec<u32>,
    /// What tells it apart from other files.
    pub key: FileKey,
}

/// What a search through `/proc` found.
#[derive(Debug, Default)]
pub struct Search {
    /// The distinct files the matching processes run, in the order of their first process.
    pub files: Vec<RunningFile>,
    /// Processes looked at.
    pub processes: usize,
    /// Processes whose executable could not be read: another user's, without the right to
    /// follow its `/proc/PID/exe` (CAP_SYS_PTRACE).
    pub unreadable: usize,
    /// With a library: processes that run the executable but have not loaded it (yet: a
    /// program just started has not had its libraries mapped).
    pub without_library: Vec<u32>,
}

/// The files of the processes that run `executable` (or the `library` they have loaded); only
/// among `only` when given.
pub fn search(
    executable: &ProcessFile,
    library: Option<&ProcessFile>,
    only: Option<&[u32]>,
) -> io::Result<Search> {
    let proc = Path::new("/proc");
    let own = std::process::id();
    let mut pids: Vec<u32> = match only {
        Some(pids) => pids.to_vec(),
        None => process_tree::pids()?.filter(|&pid| pid != own).collect(),
    };
    pids.sort_unstable();
    let mut search = Search::default();
    let mut files: BTreeMap<FileKey, usize> = BTreeMap::new();
    for pid in pids {
        search.processes += 1;
        let found = running(proc, pid, executable).and_then(|running| match (running, library) {
            (Some(_), Some(library)) => {
                let loaded = loaded(proc, pid, library)?;
                if loaded.is_none() {
                    search.without_library.push(pid);
                }
                Ok(loaded)
            }
            (running, _) => Ok(running),
        });
        match found {
            Ok(Some((id, path))) => match files.get(&id) {
                Some(&index) => search.files[index].pids.push(pid),
                None => {
                    files.insert(id, search.files.len());
                    search.files.push(RunningFile {
                        path,
                        pids: vec![pid],
                        key: id,
                    });
                }
            },
            Ok(None) => {}
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                search.unreadable += 1;
            }
            // Gone meanwhile, or a kernel thread, which runs no file.
            Err(_) => {}
        }
    }
    Ok(search)
}

/// What tells the files processes run apart, as the kernel tells them apart for uprobes: by
/// the real inode under any overlay (`d_real_inode`). Containers of one image run one file of
/// its lower layer through overlay mounts of their own, which give it the same inode number and
/// times but a device number each: keyed by device, it would be probed once per container, and
/// every call would fire each probe. Copies have inodes of their own, or times of their own on
/// another filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileKey {
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileKey {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// The file process `pid` runs, if it is `executable`: its identity and where to open it.
fn running(
    proc: &Path,
    pid: u32,
    executable: &ProcessFile,
) -> io::Result<Option<(FileKey, PathBuf)>> {
    let process = proc.join(pid.to_string());
    let exe = process.join("exe");
    let named = std::fs::read_link(&exe)?;
    // A file deleted while it runs (replaced by an upgrade) is no longer at any path.
    if named.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Ok(None);
    }
    let Some(name) = named.file_name().and_then(OsStr::to_str) else {
        return Ok(None);
    };
    if !executable.matches_name(name) {
        return Ok(None);
    }
    let file = std::fs::metadata(&exe)?;
    let root = process.join("root");
    // The path in the process's own namespace: the configured one, or the one its `exe` link
    // gives (the namespace's own path when spanprobe cannot reach that file, else ours).
    let inside = match executable {
        ProcessFile::Path(path) => path.as_path(),
        ProcessFile::Name(_) => named.as_path(),
    };
    let through_root = root.join(inside.strip_prefix("/").unwrap_or(inside));
    let same = std::fs::metadata(&through_root)
        .is_ok_and(|other| (other.dev(), other.ino()) == (file.dev(), file.ino()));
    let key = FileKey::of(&file);
    Ok(match (same, executable) {
        (true, _) => Some((key, through_root)),
        // Another file of the same name: not the executable named.
        (false, ProcessFile::Path(_)) => None,
        (false, ProcessFile::Name(_)) => Some((key, exe)),
    })
}

/// The library process `pid` has loaded that is `library`, if any: its identity and where to
/// open it. Its maps name each file as the process's namespace does (or as spanprobe's does,
/// when it can reach the file: a chroot) with the device and inode the process sees.
fn loaded(proc: &Path, pid: u32, library: &ProcessFile) -> io::Result<Option<(FileKey, PathBuf)>> {
    let process = proc.join(pid.to_string());
    let maps = std::fs::read_to_string(process.join("maps"))?;
    let root = process.join("root");
    let mut mappings = maps.lines().filter_map(Mapping::parse);
    if let ProcessFile::Path(wanted) = library {
        // The path in the process's namespace: its maps may show spanprobe's instead.
        let through_root = root.join(wanted.strip_prefix("/").unwrap_or(wanted));
        let Ok(file) = std::fs::metadata(&through_root) else {
            return Ok(None);
        };
        let name = wanted.file_name();
        return Ok(mappings
            .any(|mapping| Path::new(mapping.path).file_name() == name && mapping.is(&file))
            .then(|| (FileKey::of(&file), through_root)));
    }
    let mut looked_at: HashSet<&str> = HashSet::new();
    for mapping in mappings {
        let path = Path::new(mapping.path);
        let named = path
            .file_name()
            .and_then(OsStr::to_str)
            .is_some_and(|name| library.matches_name(name));
        if !named || !looked_at.insert(mapping.path) {
            continue;
        }
        let through_root = root.join(path.strip_prefix("/").unwrap_or(path));
        for candidate in [through_root, path.to_owned()] {
            if let Ok(file) = std::fs::metadata(&candidate)
                && mapping.is(&file)
            {
                return Ok(Some((FileKey::of(&file), candidate)));
            }
        }
    }
    Ok(None)
}

/// A line of `/proc/PID/maps` that maps a file.
struct Mapping<'a> {
    inode: u64,
    path: &'a str,
}

impl<'a> Mapping<'a> {
    /// `address perms offset major:minor inode path`, the path last (it may hold spaces).
    fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.splitn(6, ' ');
        let inode = fields.nth(4)?.parse().ok()?;
        let path = fields.next()?.trim_start();
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            return None;
        }
        Some(Self { inode, path })
    }

    /// Whether `file` is the file mapped: by inode alone, as a map of a file under an overlay
    /// may show the device of the layer it comes from rather than the overlay's (the path,
    /// compared first, keeps other filesystems' inodes out).
    fn is(&self, file: &std::fs::Metadata) -> bool {
        file.ino() == self.inode
    }
}

/// `path` as the processes running it name it: without the `/proc/PID/root` it was opened
/// through.
pub fn named_inside(path: &Path) -> Cow<'_, Path> {
    let mut components = path.components();
    let prefix = [(); 4].map(|()| components.next());
    match prefix {
        [
            Some(Component::RootDir),
            Some(Component::Normal(proc)),
            Some(Component::Normal(pid)),
            Some(Component::Normal(root)),
        ] if proc == "proc"
            && root == "root"
            && pid.to_str().is_some_and(|pid| pid.parse::<u32>().is_ok()) =>
        {
            Cow::Owned(Path::new("/").join(components.as_path()))
        }
        _ => Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test process, as `/proc` shows it: its executable found by name and by path.
    #[test]
    fn finds_a_process_by_its_executable() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        let pid = std::process::id();
        for executable in [
            ProcessFile::parse(name).unwrap(),
            ProcessFile::parse(exe.to_str().unwrap()).unwrap(),
        ] {
            let search = search(&executable, None, Some(&[pid])).unwrap();
            assert_eq!(search.processes, 1);
            assert_eq!(search.files.len(), 1, "{executable}");
            assert_eq!(search.files[0].pids, [pid]);
            assert_eq!(
                std::fs::metadata(&search.files[0].path).unwrap().ino(),
                std::fs::metadata(&exe).unwrap().ino()
            );
        }
    }

    /// The C library this test process has loaded, by name and by path, found in its maps.
    #[test]
    fn finds_a_library_a_process_has_loaded() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let executable = ProcessFile::parse(exe.to_str().unwrap()).unwrap();
        let pid = std::process::id();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = maps
            .lines()
            .filter_map(Mapping::parse)
            .find(|mapping| mapping.path.contains("/libc.so"))
            .map(|mapping| mapping.path.to_owned())
            .unwrap();
        for library in ["libc.so*", libc.as_str()] {
            let library = ProcessFile::parse(library).unwrap();
            let search = search(&executable, Some(&library), Some(&[pid])).unwrap();
            assert_eq!(search.files.len(), 1, "{library}");
            assert_eq!(
                std::fs::metadata(&search.files[0].path).unwrap().ino(),
                std::fs::metadata(&libc).unwrap().ino()
            );
        }
        let absent = ProcessFile::parse("libnothing.so*").unwrap();
        let search = search(&executable, Some(&absent), Some(&[pid])).unwrap();
        assert!(search.files.is_empty());
        assert_eq!(search.without_library, [pid]);
    }

    #[test]
    fn maps_lines_are_read_with_their_inode_and_path() {
        let line = "7f00-7f10 r-xp 00001000 fe:01 4242  /usr/lib/x86_64-linux-gnu/lib c.so";
        let mapping = Mapping::parse(line).unwrap();
        assert_eq!(mapping.path, "/usr/lib/x86_64-linux-gnu/lib c.so");
        assert_eq!(mapping.inode, 4242);
        assert!(Mapping::parse("7f00-7f10 rw-p 00000000 00:00 0  [heap]").is_none());
        assert!(Mapping::parse("7f00-7f10 rw-p 00000000 00:00 0").is_none());
    }

    #[test]
    fn paths_through_a_process_root_are_named_as_inside() {
        for (path, inside) in [
            ("/proc/42/root/opt/app/bin/app", "/opt/app/bin/app"),
            ("/proc/42/exe", "/proc/42/exe"),
            ("/proc/self/root/usr/bin/x", "/proc/self/root/usr/bin/x"),
            ("/usr/bin/x", "/usr/bin/x"),
        ] {
            assert_eq!(named_inside(Path::new(path)), Path::new(inside));
        }
    }

    #[test]
    fn another_executable_matches_nothing() {
        let pid = std::process::id();
        for text in ["/no/such/program", "no-such-program*"] {
            let executable = ProcessFile::parse(text).unwrap();
            assert!(
                search(&executable, None, Some(&[pid]))
                    .unwrap()
                    .files
                    .is_empty()
            );
        }
    }
}
