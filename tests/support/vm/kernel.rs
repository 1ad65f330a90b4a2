//! The kernels of the matrix: what `scripts/kernels.sh` downloads and prepares under
//! `target/kernels/`, one directory per release.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
};

use crate::support::repo_root;

/// Selects kernels of the matrix by release (comma-separated substrings, e.g. `6.1.0`), to
/// iterate on one kernel; unset, all of them run.
const KERNELS_VARIABLE: &str = "SPANPROBE_KERNELS";

/// One kernel of the matrix, as `scripts/kernels.sh` left it in `target/kernels/<release>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// What `uname -r` says in the guest, e.g. `6.1.0-57-cloud-amd64`.
    pub release: String,
    /// The kernel image QEMU boots.
    pub vmlinuz: PathBuf,
    /// The modules the guest loads at boot (the virtio-net driver and what it needs, where
    /// they are not built in), in the order to load them.
    pub modules: Vec<PathBuf>,
    /// Its build configuration, `CONFIG_...=...` lines.
    pub config: PathBuf,
}

impl Kernel {
    /// Reads what `scripts/kernels.sh` prepared for `release` in `dir`.
    fn prepared(dir: &Path, release: &str) -> Kernel {
        let at = dir.join(release);
        let order = at.join("modules.order");
        let order = fs::read_to_string(&order)
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/kernels.sh writes it)", order.display()));
        Kernel {
            release: release.to_owned(),
            vmlinuz: at.join("vmlinuz"),
            modules: order
                .lines()
                .filter(|line| !line.is_empty())
                .map(|name| at.join("modules").join(name))
                .collect(),
            config: at.join("config"),
        }
    }

    /// The value of build option `option` (e.g. `CONFIG_VIRTIO_NET`): `y`, `m`, a number or a
    /// quoted string; `None` when it is not set.
    pub fn config(&self, option: &str) -> Option<String> {
        let text = fs::read_to_string(&self.config)
            .unwrap_or_else(|e| panic!("{}: {e}", self.config.display()));
        let prefix = format!("{option}=");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(str::to_owned)
    }
}

/// The kernels of the matrix, prepared on first use by `scripts/kernels.sh` (a download the
/// first time, about a second once cached). [`KERNELS_VARIABLE`] narrows it down.
pub fn matrix() -> &'static [Kernel] {
    static MATRIX: OnceLock<Vec<Kernel>> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let all = prepare();
        let Ok(wanted) = std::env::var(KERNELS_VARIABLE) else {
            return all;
        };
        let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
        let (kept, left): (Vec<Kernel>, Vec<Kernel>) = all
            .into_iter()
            .partition(|k| wanted.iter().any(|w| k.release.contains(w)));
        // Said loudly: a narrowed matrix must not pass for the whole one.
        eprintln!(
            "vm: {KERNELS_VARIABLE}={wanted:?}: leaving out {:?}",
            left.iter().map(|k| &k.release).collect::<Vec<_>>()
        );
        kept
    })
}

/// Runs `scripts/kernels.sh` and reads every kernel it prepared.
fn prepare() -> Vec<Kernel> {
    let script = repo_root().join("scripts/kernels.sh");
    // Its log (downloads) goes to the test's stderr; the releases come on stdout.
    let output = std::process::Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}); its messages are above",
        script.display(),
        output.status
    );
    let dir = repo_root().join("target/kernels");
    let all: Vec<Kernel> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(|release| Kernel::prepared(&dir, release))
        .collect();
    assert!(!all.is_empty(), "{} prepared no kernel", script.display());
    all
}
