//! Scripts in a guest: QEMU boots a kernel of the matrix with an initramfs made for the batch,
//! /init runs the scripts and reports on a serial port of its own, and the guest powers off.

use std::{
    fmt,
    fs::{self, File},
    path::Path,
    process::Stdio,
    sync::OnceLock,
    time::{Duration, Instant},
};

use super::{Kernel, Script, ScriptOutput, channel, initramfs, script::each_took};

/// What a guest may take besides its scripts' time limits: the boot, loading the modules,
/// unpacking a 250 MB initramfs (the debug build of spanprobe) and powering off take seconds;
/// the rest is margin for a loaded CI machine.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(90);

/// What each script may take besides its own time limit, in a guest: writing its output to the
/// serial port.
const SCRIPT_ALLOWANCE: Duration = Duration::from_secs(10);

/// Guest memory: room for the initramfs twice over (the archive, then its unpacked files)
/// and for what the scripts run.
const GUEST_MEMORY: &str = "2G";

/// Guest CPUs: two, so that threads and processes of a scenario can run at once.
const GUEST_CPUS: &str = "2";

/// The address of the host in QEMU's user-mode network (`$OTLP_HOST` in a guest: QEMU
/// forwards it to the host's loopback), and the guest's own.
pub(super) const OTLP_HOST: &str = "10.0.2.2";
pub(super) const ADDRESS: &str = "10.0.2.15/24";

/// What a guest did.
#[derive(Debug, Clone)]
pub struct Boot {
    /// Each script's output, in the order of the scripts.
    pub outputs: Vec<ScriptOutput>,
    /// /init's own messages (modules, network), empty when all went well.
    pub setup: String,
    /// The kernel's console (ttyS0): boot messages at `quiet` level, oopses, panics.
    pub console: String,
    /// The guest's uptime when /init was ready to run the first script.
    pub ready_after: Duration,
    /// From QEMU's start to its exit, as the host measured it.
    pub elapsed: Duration,
    /// The size of the initramfs.
    pub initramfs_bytes: u64,
}

/// A guest that did not run its scripts to the end, with what it printed.
#[derive(Debug, Clone)]
pub struct BootError {
    pub release: String,
    /// What went wrong.
    pub problem: String,
    /// The kernel's console.
    pub console: String,
    /// What came on the scripts' channel, for the parts that did arrive.
    pub channel: String,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The end of the console says why a guest died; its start is the boot.
        let lines: Vec<&str> = self.console.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        write!(
            f,
            "vm {}: {}\n--- console (last 80 lines) ---\n{tail}\n--- scripts' channel ---\n{}",
            self.release, self.problem, self.channel
        )
    }
}

impl std::error::Error for BootError {}

/// Runs `scripts` in one boot of `kernel` and returns their outputs, logging what the boot
/// cost.
pub(super) async fn run(
    kernel: &Kernel,
    scripts: &[Script],
) -> Result<Vec<ScriptOutput>, BootError> {
    let boot = boot(kernel, scripts).await?;
    // Seen with --nocapture: what each kernel costs, and what went wrong in /init.
    eprintln!(
        "vm {}: {} scripts in {:.1?} (guest ready after {:.2?}, initramfs {} MB; {})",
        kernel.release,
        scripts.len(),
        boot.elapsed,
        boot.ready_after,
        boot.initramfs_bytes / 1_000_000,
        each_took(&boot.outputs)
    );
    if !boot.setup.is_empty() {
        eprintln!("vm {}: /init said:\n{}", kernel.release, boot.setup);
    }
    Ok(boot.outputs)
}

/// Boots `kernel` with an initramfs holding `scripts` and their files, runs them one after
/// the other, powers off, and returns their outputs. Guests boot one at a time per two host
/// CPUs (each has two), the others wait: the time limits count from the boot.
pub async fn boot(kernel: &Kernel, scripts: &[Script]) -> Result<Boot, BootError> {
    let _slot = guest_slots()
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let failed = |problem: String, console: String, channel: String| BootError {
        release: kernel.release.clone(),
        problem,
        console,
        channel,
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let initramfs = dir.path().join("initramfs.cpio");
    let built = {
        let (kernel, scripts, initramfs) = (kernel.clone(), scripts.to_vec(), initramfs.clone());
        tokio::task::spawn_blocking(move || initramfs::write(&kernel, &scripts, &initramfs))
            .await
            .expect("the initramfs task does not panic")
    };
    let initramfs_bytes = built.map_err(|e| {
        failed(
            format!("cannot build the initramfs: {e}"),
            String::new(),
            String::new(),
        )
    })?;

    let console = dir.path().join("console.log");
    let channel = dir.path().join("channel.bin");
    let errors = dir.path().join("qemu.err");
    let mut qemu = qemu(kernel, &initramfs, &console, &channel, &errors);
    let started = Instant::now();
    let mut child = qemu.spawn().map_err(|e| {
        failed(
            format!("cannot start qemu-system-x86_64 (scripts/setup.sh installs it): {e}"),
            String::new(),
            String::new(),
        )
    })?;
    let limit = BOOT_ALLOWANCE
        + scripts
            .iter()
            .map(|s| s.time_limit + SCRIPT_ALLOWANCE)
            .sum::<Duration>();
    let exited = tokio::time::timeout(limit, child.wait()).await;
    let elapsed = started.elapsed();
    if exited.is_err() {
        // kill_on_drop would do it too, but the files are read below.
        let _ = child.kill().await;
    }
    let console = String::from_utf8_lossy(&fs::read(&console).unwrap_or_default()).into_owned();
    let channel_bytes = fs::read(&channel).unwrap_or_default();
    let channel_text = String::from_utf8_lossy(&channel_bytes).into_owned();
    let problem = match exited {
        Err(_) => Some(format!("still running after {limit:?}: killed")),
        Ok(Err(e)) => Some(format!("waiting for qemu: {e}")),
        Ok(Ok(status)) if !status.success() => {
            let errors = fs::read_to_string(&errors).unwrap_or_default();
            Some(format!("qemu exited with {status}: {errors}"))
        }
        Ok(Ok(_)) => None,
    };
    if let Some(problem) = problem {
        return Err(failed(problem, console, channel_text));
    }
    match channel::parse(&channel_bytes, scripts) {
        Ok(parsed) => Ok(Boot {
            outputs: parsed.outputs,
            setup: parsed.setup,
            console,
            ready_after: parsed.ready_after,
            elapsed,
            initramfs_bytes,
        }),
        Err(problem) => Err(failed(problem, console, channel_text)),
    }
}

/// The QEMU command that boots `kernel` with `initramfs`: the kernel's console to the file
/// `console` (first serial port), /init's reports to `channel` (second), QEMU's own errors to
/// `errors`.
fn qemu(
    kernel: &Kernel,
    initramfs: &Path,
    console: &Path,
    channel: &Path,
    errors: &Path,
) -> tokio::process::Command {
    let mut qemu = tokio::process::Command::new("qemu-system-x86_64");
    qemu.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-accel", "tcg,thread=single", "-cpu", "max"])
        .args(["-m", GUEST_MEMORY, "-smp", GUEST_CPUS])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        // panic=-1: a panic reboots at once, and -no-reboot turns that into QEMU's exit.
        .args(["-append", "console=ttyS0 quiet panic=-1", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", channel.display()))
        .args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(errors).expect("qemu's error file"))
        .kill_on_drop(true);
    qemu
}

/// How many guests may run at once: one per two host CPUs (a guest has two), at least one.
fn guest_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::sync::Semaphore::new((cpus / 2).max(1))
    })
}
