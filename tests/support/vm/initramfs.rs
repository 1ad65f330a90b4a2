//! The initramfs of a boot: a part each kernel's boots share (busybox, the kernel's modules),
//! made once and kept, then what is the batch's own (/init, the scripts, spanprobe and the
//! scripts' files).

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, BufWriter, Write as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use super::{
    Kernel, Script,
    cpio::{Archive, ROOT},
    files::{context, guest_name},
    init,
};
use crate::support::spanprobe;

/// Writes the initramfs for `scripts` on `kernel` to `path`: the kernel's part (cached), then
/// /init, the scripts, spanprobe and the scripts' files. Returns its size.
pub(super) fn write(kernel: &Kernel, scripts: &[Script], path: &Path) -> io::Result<u64> {
    let base = base(kernel)?;
    let mut archive = base
        .archive
        .continued(BufWriter::new(File::create(path)?))?;
    archive.bytes(
        "init",
        0o755,
        init::script(&base.busybox, scripts).as_bytes(),
    )?;
    for (index, script) in scripts.iter().enumerate() {
        archive.bytes(
            &format!("vm/scripts/{index}.sh"),
            0o644,
            script.text.as_bytes(),
        )?;
    }
    archive.host_path(Path::new(spanprobe()), true)?;
    for file in scripts.iter().flat_map(|s| &s.files) {
        archive
            .host_path(file, true)
            .map_err(|e| context(e, &format!("placing {} in the guest", file.display())))?;
    }
    let (mut out, size) = archive.finish()?;
    out.flush()?;
    Ok(size)
}

/// The part of an initramfs that is the same for every boot of a kernel: busybox (and its
/// libraries, if it has any), the modules, the directories /init mounts on. Left without a
/// trailer, so that each boot's entries follow it in the same archive.
struct Base {
    archive: Archive<Vec<u8>>,
    /// Where busybox is, on the host and so in the guest.
    busybox: PathBuf,
}

/// `kernel`'s [`Base`], made on its first boot.
fn base(kernel: &Kernel) -> io::Result<Arc<Base>> {
    static BASES: OnceLock<Mutex<HashMap<String, Arc<Base>>>> = OnceLock::new();
    let mut bases = BASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(base) = bases.get(&kernel.release) {
        return Ok(base.clone());
    }
    let busybox = find_busybox()?;
    let mut archive = Archive::new();
    for (dir, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("vm", 0o755),
        ("vm/modules", 0o755),
        ("vm/scripts", 0o755),
        ("vm/out", 0o755),
    ] {
        archive.entry(dir, libc::S_IFDIR | mode, ROOT, &[])?;
    }
    // Where busybox links its applets, as the host has them: on a merged-/usr host, /bin is a
    // link to usr/bin, and a guest with a /bin directory of its own would hide the host files
    // placed under /bin (they are in usr/bin).
    for dir in ["/bin", "/sbin", "/usr/bin", "/usr/sbin"] {
        if fs::symlink_metadata(dir).is_ok() {
            archive.leading_to(Path::new(dir), 0)?;
        } else {
            archive.entry(
                &guest_name(Path::new(dir)),
                libc::S_IFDIR | 0o755,
                ROOT,
                &[],
            )?;
        }
    }
    archive.host_path(&busybox, true)?;
    add_modules(&mut archive, kernel)?;
    let base = Arc::new(Base { archive, busybox });
    bases.insert(kernel.release.clone(), base.clone());
    Ok(base)
}

/// The first busybox in PATH: a static one, or its libraries come with it.
fn find_busybox() -> io::Result<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("busybox"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no busybox in PATH (scripts/setup.sh installs busybox-static)",
            )
        })
}

/// `kernel`'s modules under /vm/modules, and /vm/modules.order, the order /init loads them in.
fn add_modules(archive: &mut Archive<Vec<u8>>, kernel: &Kernel) -> io::Result<()> {
    let mut order = String::new();
    for module in &kernel.modules {
        let name = module
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{}: no file name", module.display())))?
            .to_string_lossy()
            .into_owned();
        let data = fs::read(module).map_err(|e| context(e, &module.display().to_string()))?;
        archive.bytes(&format!("vm/modules/{name}"), 0o644, &data)?;
        order.push_str(&name);
        order.push('\n');
    }
    archive.bytes("vm/modules.order", 0o644, order.as_bytes())
}
