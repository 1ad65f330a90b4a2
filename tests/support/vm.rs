//! The kernel matrix: the same shell scripts run on the host and, under QEMU, on other
//! kernels, so that a scenario written once is checked on every kernel spanprobe must load on.
//!
//! - [`matrix`] is the kernels: the newest Debian 12 cloud kernel of each series that
//!   `scripts/kernels.sh` prepares (downloaded by package name, cached under `target/kernels/`).
//! - A [`Script`] is shell text plus the host files it needs. [`Machine::run`] runs a batch of
//!   them on the host (`sh -c`, one after the other) or in a guest (all of them in one boot:
//!   a boot costs seconds, and the verifier runs about 6 times slower under TCG), and returns
//!   each one's [`ScriptOutput`]: status, stdout, stderr, time taken.
//! - A [`Case`] is a script, the [`Receiver`] it exports to and the checks on what arrived;
//!   [`run_matrix`] runs cases on every machine and reports every failure at once.
//!
//! What a script can count on, on every machine: it runs under a POSIX `sh` (dash on the
//! host, busybox's ash in a guest) from `/`, with stdin from /dev/null, with
//! - `$SPANPROBE`: the spanprobe binary under test;
//! - `$OTLP_HOST`: the address at which the test's receivers are reached (127.0.0.1 on the
//!   host, 10.0.2.2 in a guest, where QEMU's user-mode network forwards it to the host's
//!   loopback); [`grpc_endpoint`] and [`http_endpoint`] write the URL with it;
//! - the files named by [`Script::file`] at their own absolute paths, with the shared libraries
//!   that ldd finds for each ELF file among them, and the dynamic loader;
//! - root, with /proc, /sys, /dev, BTF, tracefs, debugfs and bpffs (in a guest: whatever the
//!   kernel has) and busybox's applets in PATH;
//! - its time limit: past it, the script's process group is killed, and whatever the script
//!   left running in its group is killed when it exits.
//!
//! A guest is a QEMU machine without KVM (TCG: nested KVM fails on the machines this runs on)
//! booting the kernel with an initramfs and no disk. The initramfs holds busybox, the kernel's
//! virtio-net modules, the files of the scripts and an /init written for the batch. /init
//! writes the scripts' results to a second serial port (ttyS1), length-prefixed, while the
//! kernel's console is the first (ttyS0): kernel messages never interleave with them.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    fs::{self, File},
    io::{self, BufWriter, Read as _, Seek as _, Write},
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _, process::ExitStatusExt as _},
    panic::AssertUnwindSafe,
    path::{Component, Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use super::receiver::Receiver;

/// A script's time limit unless it sets one: generous, since a guest runs the verifier and
/// everything else several times slower than the host.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(120);

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

/// The address of the host in QEMU's user-mode network, and the guest's own.
const GUEST_OTLP_HOST: &str = "10.0.2.2";
const GUEST_ADDRESS: &str = "10.0.2.15/24";

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
        let script = super::repo_root().join("scripts/kernels.sh");
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
        let dir = super::repo_root().join("target/kernels");
        let all: Vec<Kernel> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|release| Kernel::prepared(&dir, release))
            .collect();
        assert!(!all.is_empty(), "{} prepared no kernel", script.display());
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

/// A shell script to run on a machine, and what it needs from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Names it in reports.
    pub name: String,
    /// The shell text (see the module's documentation for its environment).
    pub text: String,
    /// Host files and directories the guest needs, placed at the same paths (directories with
    /// everything in them).
    pub files: Vec<PathBuf>,
    /// Past it, the script is killed (and reported with [`ScriptOutput::timed_out`]).
    pub time_limit: Duration,
}

impl Script {
    /// `text`, called `name`, needing no file and limited to [`DEFAULT_TIME_LIMIT`].
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Script {
        Script {
            name: name.into(),
            text: text.into(),
            files: Vec::new(),
            time_limit: DEFAULT_TIME_LIMIT,
        }
    }

    /// Also needs `path` (a file or a directory) from the host. spanprobe itself is always
    /// there; the shared libraries of ELF files come with them.
    pub fn file(mut self, path: impl AsRef<Path>) -> Script {
        self.files.push(path.as_ref().to_owned());
        self
    }

    /// Limited to `limit` rather than [`DEFAULT_TIME_LIMIT`].
    pub fn time_limit(mut self, limit: Duration) -> Script {
        self.time_limit = limit;
        self
    }
}

/// What came of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutput {
    /// The script's name.
    pub name: String,
    /// Its exit status as the shell reports it: 128 + N when signal N ended it.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// From its start to its end, on the machine's clock (a guest's counts in hundredths).
    pub elapsed: Duration,
    /// Killed at its time limit.
    pub timed_out: bool,
}

impl ScriptOutput {
    /// Asserts that the script exited with status 0, showing what it wrote if not.
    pub fn assert_success(&self) -> &ScriptOutput {
        assert!(self.status == 0 && !self.timed_out, "{self}");
        self
    }
}

impl fmt::Display for ScriptOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ended = if self.timed_out {
            "killed at its time limit".to_owned()
        } else {
            format!("exited with status {}", self.status)
        };
        write!(
            f,
            "script {:?} {ended} after {:.2?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.name, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Where scripts run: the host's own kernel, or a kernel of the matrix under QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Machine {
    Host,
    Vm(Kernel),
}

impl Machine {
    /// The host, then every kernel of the [`matrix`].
    pub fn all() -> Vec<Machine> {
        let mut all = vec![Machine::Host];
        all.extend(matrix().iter().cloned().map(Machine::Vm));
        all
    }

    /// The kernel release it runs, as `uname -r` says.
    pub fn release(&self) -> String {
        match self {
            Machine::Host => fs::read_to_string("/proc/sys/kernel/osrelease")
                .expect("the host's /proc/sys/kernel/osrelease")
                .trim()
                .to_owned(),
            Machine::Vm(kernel) => kernel.release.clone(),
        }
    }

    /// The address `$OTLP_HOST` has there.
    pub fn otlp_host(&self) -> &'static str {
        match self {
            Machine::Host => "127.0.0.1",
            Machine::Vm(_) => GUEST_OTLP_HOST,
        }
    }

    /// Runs `scripts` one after the other and returns their outputs, in the same order. In a
    /// guest, all of them run in one boot; a guest that does not finish panics with its
    /// console.
    pub async fn run(&self, scripts: &[Script]) -> Vec<ScriptOutput> {
        self.try_run(scripts)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`Machine::run`], with a guest that did not finish as an error (the host has none).
    pub async fn try_run(&self, scripts: &[Script]) -> Result<Vec<ScriptOutput>, BootError> {
        let Machine::Vm(kernel) = self else {
            let started = Instant::now();
            let mut outputs = Vec::with_capacity(scripts.len());
            for script in scripts {
                outputs.push(run_on_host(script).await);
            }
            eprintln!(
                "host: {} scripts in {:.1?} ({})",
                scripts.len(),
                started.elapsed(),
                each_took(&outputs)
            );
            return Ok(outputs);
        };
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
}

/// How long each script took, for the log.
fn each_took(outputs: &[ScriptOutput]) -> String {
    let each: Vec<String> = outputs
        .iter()
        .map(|output| format!("{} {:.2?}", output.name, output.elapsed))
        .collect();
    each.join(", ")
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::Host => write!(f, "host ({})", self.release()),
            Machine::Vm(kernel) => write!(f, "vm {}", kernel.release),
        }
    }
}

/// `receiver`'s OTLP/gRPC endpoint as a script writes it: `http://$OTLP_HOST:PORT`, for
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (gRPC is spanprobe's default protocol).
pub fn grpc_endpoint(receiver: &Receiver) -> String {
    format!("http://$OTLP_HOST:{}", receiver.ports().0)
}

/// `receiver`'s OTLP/HTTP base URL as a script writes it, `http://$OTLP_HOST:PORT`: with
/// `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`; requests go to its `/v1/traces`.
pub fn http_endpoint(receiver: &Receiver) -> String {
    format!("http://$OTLP_HOST:{}", receiver.ports().1)
}

/// Makes a case's script for the receiver started for it.
type MakeScript = Box<dyn Fn(&Receiver) -> Script + Send + Sync>;

/// Checks what came of a case's script on a machine: its output, and what its receiver got.
type Check = Box<dyn Fn(&Machine, &ScriptOutput, &Receiver) + Send + Sync>;

/// One case of the matrix: a script, given the receiver started for it on each machine, and
/// the checks on what came of it there.
pub struct Case {
    script: MakeScript,
    check: Check,
}

impl Case {
    /// `script` makes the script that exports to a receiver; `check` asserts (panics) on what
    /// the script printed and the receiver got, by the time the script ended.
    pub fn new(
        script: impl Fn(&Receiver) -> Script + Send + Sync + 'static,
        check: impl Fn(&Machine, &ScriptOutput, &Receiver) + Send + Sync + 'static,
    ) -> Case {
        Case {
            script: Box::new(script),
            check: Box::new(check),
        }
    }
}

/// Runs `cases` on every machine ([`Machine::all`]): on each, a receiver per case, the
/// scripts in one batch, then each case's check. A check that fails does not stop the others:
/// the failures of the whole matrix are reported together at the end, by case and machine.
pub async fn run_matrix(cases: &[Case]) {
    let mut failures = Vec::new();
    let mut checks = 0;
    for machine in Machine::all() {
        let mut receivers = Vec::with_capacity(cases.len());
        for _ in cases {
            receivers.push(Receiver::start().await);
        }
        let scripts: Vec<Script> = cases
            .iter()
            .zip(&receivers)
            .map(|(case, receiver)| (case.script)(receiver))
            .collect();
        let outputs = match machine.try_run(&scripts).await {
            Ok(outputs) => outputs,
            Err(error) => {
                // Every case failed there; the other machines still run.
                checks += cases.len();
                failures.push(format!("every case on {machine}: {error}"));
                Vec::new()
            }
        };
        for ((case, output), receiver) in cases.iter().zip(&outputs).zip(&receivers) {
            checks += 1;
            let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                (case.check)(&machine, output, receiver)
            }));
            if let Err(panic) = checked {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(a panic without a message)");
                failures.push(format!("{:?} on {machine}: {message}", output.name));
            }
        }
        for receiver in receivers {
            receiver.stop().await;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Runs `script` with `sh -c` in its own process group, killing the group at its time limit,
/// and, when it exits, whatever it left running (which would hold its output pipes open).
async fn run_on_host(script: &Script) -> ScriptOutput {
    use tokio::io::AsyncReadExt as _;
    let started = Instant::now();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script.text)
        .current_dir("/")
        .env("OTLP_HOST", Machine::Host.otlp_host())
        .env("SPANPROBE", super::spanprobe())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("sh starts");
    let group = child.id().expect("a started child has a pid") as i32;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let stdout = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes).await;
        bytes
    });
    let stderr = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes).await;
        bytes
    });
    let kill_group = || {
        // SAFETY: plain kill(2) on the group the script leads; ESRCH (nothing left) is fine.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    };
    let (status, timed_out) = match tokio::time::timeout(script.time_limit, child.wait()).await {
        Ok(status) => (status.expect("waited for sh"), false),
        Err(_) => {
            kill_group();
            (child.wait().await.expect("waited for sh"), true)
        }
    };
    kill_group();
    let elapsed = started.elapsed();
    ScriptOutput {
        name: script.name.clone(),
        status: status
            .code()
            .or(status.signal().map(|signal| 128 + signal))
            .expect("an exit status has a code or a signal"),
        stdout: String::from_utf8_lossy(&stdout.await.expect("stdout read")).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.await.expect("stderr read")).into_owned(),
        elapsed,
        timed_out,
    }
}

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
        tokio::task::spawn_blocking(move || write_initramfs(&kernel, &scripts, &initramfs))
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
    let mut qemu = tokio::process::Command::new("qemu-system-x86_64");
    qemu.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-accel", "tcg", "-cpu", "max"])
        .args(["-m", GUEST_MEMORY, "-smp", GUEST_CPUS])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initramfs)
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
        .stderr(File::create(dir.path().join("qemu.err")).expect("qemu's error file"))
        .kill_on_drop(true);
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
    match exited {
        Err(_) => {
            return Err(failed(
                format!("still running after {limit:?}: killed"),
                console,
                channel_text,
            ));
        }
        Ok(Err(e)) => {
            return Err(failed(
                format!("waiting for qemu: {e}"),
                console,
                channel_text,
            ));
        }
        Ok(Ok(status)) if !status.success() => {
            let errors = fs::read_to_string(dir.path().join("qemu.err")).unwrap_or_default();
            return Err(failed(
                format!("qemu exited with {status}: {errors}"),
                console,
                channel_text,
            ));
        }
        Ok(Ok(_)) => {}
    }
    match parse_channel(&channel_bytes, scripts) {
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

/// How many guests may run at once: one per two host CPUs (a guest has two), at least one.
fn guest_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::sync::Semaphore::new((cpus / 2).max(1))
    })
}

/// What /init reported on the channel.
struct Parsed {
    setup: String,
    ready_after: Duration,
    outputs: Vec<ScriptOutput>,
}

/// Reads the channel's records, as /init writes them on ttyS1 (`N` is the script's index; a
/// byte count is followed by exactly that many bytes and a newline):
///
/// ```text
/// @@vm setup BYTES            /init's own messages
/// @@vm ready CENTISECONDS     the guest's uptime, once set up
/// @@vm N stdout BYTES
/// @@vm N stderr BYTES
/// @@vm N status STATUS CENTISECONDS TIMED_OUT(0|1)
/// @@vm done
/// ```
fn parse_channel(bytes: &[u8], scripts: &[Script]) -> Result<Parsed, String> {
    let mut rest = bytes;
    let mut setup = String::new();
    let mut ready_after = None;
    let mut streams: HashMap<(usize, String), String> = HashMap::new();
    let mut outputs: Vec<Option<ScriptOutput>> = vec![None; scripts.len()];
    let centiseconds = |text: &str| -> Result<Duration, String> {
        text.parse::<u64>()
            .map(|c| Duration::from_millis(c * 10))
            .map_err(|_| format!("not a time in hundredths: {text:?}"))
    };
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(if rest.is_empty() {
                match outputs.iter().position(Option::is_none) {
                    Some(index) => format!(
                        "the guest stopped while script {index} ({:?}) ran (see the console)",
                        scripts[index].name
                    ),
                    None => "the guest stopped before its last script ended (see the console)"
                        .to_owned(),
                }
            } else {
                format!(
                    "the channel ends in a partial line {:?}",
                    String::from_utf8_lossy(rest)
                )
            });
        };
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        let fields: Vec<&str> = line.split(' ').collect();
        // Takes a record's BYTES bytes and the newline after them.
        let mut take = |count: &str| -> Result<String, String> {
            let count: usize = count
                .parse()
                .map_err(|_| format!("not a byte count in {line:?}"))?;
            if rest.len() < count + 1 || rest[count] != b'\n' {
                return Err(format!("the record {line:?} is cut short"));
            }
            let text = String::from_utf8_lossy(&rest[..count]).into_owned();
            rest = &rest[count + 1..];
            Ok(text)
        };
        match fields[..] {
            ["@@vm", "setup", count] => setup = take(count)?,
            ["@@vm", "ready", time] => ready_after = Some(centiseconds(time)?),
            ["@@vm", "done"] => break,
            ["@@vm", index, stream @ ("stdout" | "stderr"), count] => {
                let text = take(count)?;
                streams.insert((index_of(index, scripts)?, stream.to_owned()), text);
            }
            ["@@vm", index, "status", status, time, timed_out] => {
                let index = index_of(index, scripts)?;
                let mut stream = |name: &str| streams.remove(&(index, name.to_owned()));
                let (Some(stdout), Some(stderr)) = (stream("stdout"), stream("stderr")) else {
                    return Err(format!("script {index} has a status but no output"));
                };
                outputs[index] = Some(ScriptOutput {
                    name: scripts[index].name.clone(),
                    status: status
                        .parse()
                        .map_err(|_| format!("not a status in {line:?}"))?,
                    stdout,
                    stderr,
                    elapsed: centiseconds(time)?,
                    timed_out: timed_out == "1",
                });
            }
            _ => return Err(format!("unexpected line on the channel: {line:?}")),
        }
    }
    let outputs = outputs
        .into_iter()
        .enumerate()
        .map(|(index, output)| output.ok_or(format!("script {index} reported nothing")))
        .collect::<Result<_, _>>()?;
    Ok(Parsed {
        setup,
        ready_after: ready_after.ok_or("the guest never said it was ready")?,
        outputs,
    })
}

fn index_of(text: &str, scripts: &[Script]) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|&index| index < scripts.len())
        .ok_or_else(|| format!("no script {text:?}"))
}

/// Writes the initramfs for `scripts` on `kernel` to `path`: the kernel's part (cached), then
/// /init, the scripts, spanprobe and the scripts' files. Returns its size.
fn write_initramfs(kernel: &Kernel, scripts: &[Script], path: &Path) -> io::Result<u64> {
    let base = base_archive(kernel)?;
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&base.bytes)?;
    let mut archive = Archive {
        out,
        offset: base.bytes.len() as u64,
        written: base.written.clone(),
        next_inode: base.next_inode,
    };
    archive.bytes(
        "init",
        0o755,
        init_script(&base.busybox, scripts).as_bytes(),
    )?;
    for (index, script) in scripts.iter().enumerate() {
        archive.bytes(
            &format!("vm/scripts/{index}.sh"),
            0o644,
            script.text.as_bytes(),
        )?;
    }
    archive.host_path(Path::new(super::spanprobe()), true)?;
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
struct BaseArchive {
    bytes: Vec<u8>,
    written: BTreeSet<PathBuf>,
    next_inode: u32,
    /// Where busybox is, on the host and so in the guest.
    busybox: PathBuf,
}

fn base_archive(kernel: &Kernel) -> io::Result<Arc<BaseArchive>> {
    static BASES: OnceLock<Mutex<HashMap<String, Arc<BaseArchive>>>> = OnceLock::new();
    let mut bases = BASES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(base) = bases.get(&kernel.release) {
        return Ok(base.clone());
    }
    let busybox = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("busybox"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no busybox in PATH (scripts/setup.sh installs busybox-static)",
            )
        })?;
    let mut archive = Archive {
        out: Vec::new(),
        offset: 0,
        written: BTreeSet::new(),
        next_inode: 1,
    };
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
        archive.entry(dir, libc::S_IFDIR | mode, (0, 0, 0), &[])?;
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
                (0, 0, 0),
                &[],
            )?;
        }
    }
    archive.host_path(&busybox, true)?;
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
    archive.bytes("vm/modules.order", 0o644, order.as_bytes())?;
    let base = Arc::new(BaseArchive {
        bytes: archive.out,
        written: archive.written,
        next_inode: archive.next_inode,
        busybox,
    });
    bases.insert(kernel.release.clone(), base.clone());
    Ok(base)
}

/// The guest's /init for `scripts`: mounts, modules, network, then each script (see
/// [`parse_channel`] for what it writes), then power off.
fn init_script(busybox: &Path, scripts: &[Script]) -> String {
    // The kernel splits a #! line at blanks: no quoting helps there.
    let busybox = busybox.display();
    let spanprobe = shell_quote(super::spanprobe());
    let mut init = format!(
        r#"#!{busybox} sh
# /init of a spanprobe test guest, written by tests/support/vm.rs for one batch of scripts.
# Applet links go where the host has no file of its own (host files win).
{busybox} --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
{{
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# / is already a tmpfs: /tmp is writable without a mount of its own, which would hide the
# files placed under it.
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for module in $(cat /vm/modules.order); do
  insmod /vm/modules/$module || echo "vm: insmod $module failed"
done
ip link set lo up
ip addr add {GUEST_ADDRESS} dev eth0 && ip link set eth0 up && ip route add default via {GUEST_OTLP_HOST} || echo "vm: no network"
}} >/vm/setup.log 2>&1
ulimit -l unlimited
export OTLP_HOST={GUEST_OTLP_HOST} SPANPROBE={spanprobe}
cd /
# Raw: bytes go out as they are (no CR before each LF).
stty -F /dev/ttyS1 raw -echo
# emit NAME FILE: a record of FILE's bytes; each redirection's close waits until they are sent.
emit() {{
  printf '@@vm %s %s\n' "$1" "$(($(wc -c <"$2")))"
  cat "$2"
  printf '\n'
}}
hundredths() {{
  read -r up rest </proc/uptime
  echo "${{up%.*}}${{up#*.}}"
}}
# run INDEX SECONDS: the script in its own session (so its process group can be killed as a
# whole), killed at its time limit, then whatever it left running.
run() {{
  start=$(hundredths)
  setsid sh /vm/scripts/$1.sh </dev/null >/vm/out/$1.stdout 2>/vm/out/$1.stderr &
  pid=$!
  (sleep $2; echo >/vm/out/$1.timeout; kill -KILL -$pid) 2>/dev/null &
  watchdog=$!
  wait $pid
  status=$?
  kill -KILL -$pid 2>/dev/null
  kill $watchdog 2>/dev/null
  end=$(hundredths)
  timed_out=0
  [ -e /vm/out/$1.timeout ] && timed_out=1
  {{
    emit "$1 stdout" /vm/out/$1.stdout
    emit "$1 stderr" /vm/out/$1.stderr
    printf '@@vm %s status %s %s %s\n' "$1" "$status" "$((end - start))" "$timed_out"
  }} >/dev/ttyS1
}}
{{
  emit setup /vm/setup.log
  printf '@@vm ready %s\n' "$(hundredths)"
}} >/dev/ttyS1
"#
    );
    for (index, script) in scripts.iter().enumerate() {
        let seconds = script.time_limit.as_secs_f64().ceil().max(1.0) as u64;
        init.push_str(&format!("run {index} {seconds}\n"));
    }
    init.push_str("printf '@@vm done\\n' >/dev/ttyS1\npoweroff -f\n");
    init
}

/// `text` as one word for the shell, whatever it holds.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `e` with `what` said first.
fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A cpio archive in the "newc" format, the one the kernel unpacks as an initramfs, written
/// here rather than with cpio(1) so that host files are streamed from their own paths (no
/// copies: spanprobe's debug build is 250 MB) and the symbolic links leading to them are kept
/// as they are on the host.
struct Archive<W> {
    out: W,
    /// Bytes written so far: entries are aligned on 4 bytes.
    offset: u64,
    /// Paths in the archive (relative to /), each written once.
    written: BTreeSet<PathBuf>,
    /// Inode numbers only need to differ (every entry has one link).
    next_inode: u32,
}

impl<W: Write> Archive<W> {
    /// Writes the entry header for `name` (relative to /) and `data`, unless `name` is there.
    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        owner: (u32, u32, i64),
        data: &[u8],
    ) -> io::Result<()> {
        if !self.written.insert(PathBuf::from(name)) {
            return Ok(());
        }
        self.header(name, mode, owner, data.len() as u64)?;
        self.write(data)?;
        self.pad()
    }

    /// An entry header; its data follows.
    fn header(
        &mut self,
        name: &str,
        mode: u32,
        (uid, gid, mtime): (u32, u32, i64),
        size: u64,
    ) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::other(format!(
                "{name}: too large for a cpio archive (4 GiB at most)"
            ))
        })?;
        let inode = self.next_inode;
        self.next_inode += 1;
        let mtime = u32::try_from(mtime.max(0)).unwrap_or(u32::MAX);
        let header = format!(
            "070701{inode:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
             {zero:08x}{zero:08x}{zero:08x}{zero:08x}{namesize:08x}{zero:08x}",
            nlink = 1,
            zero = 0,
            namesize = name.len() + 1,
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - self.offset % 4) % 4;
        self.write(&[0; 3][..padding as usize])
    }

    /// A file made here (not the host's), owned by root.
    fn bytes(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, libc::S_IFREG | mode, (0, 0, 0), data)
    }

    /// The host's `path` at the same path: the directories and symbolic links leading to it as
    /// they are on the host, then a file, or a directory with everything in it. With `deps`,
    /// also what ldd says each ELF file among them needs.
    fn host_path(&mut self, path: &Path, deps: bool) -> io::Result<()> {
        let real = self.leading_to(path, 0)?;
        let metadata = fs::metadata(&real).map_err(|e| context(e, &real.display().to_string()))?;
        if metadata.is_dir() {
            self.host_tree(&real, deps)
        } else if metadata.is_file() {
            self.host_file(&real, &metadata, deps)
        } else {
            Err(io::Error::other(format!(
                "{}: neither a file nor a directory",
                real.display()
            )))
        }
    }

    /// Adds the directories and symbolic links on the way to `path` (and `path` itself when it
    /// is one of those) and returns the path without links, where the content is.
    fn leading_to(&mut self, path: &Path, depth: u32) -> io::Result<PathBuf> {
        // The kernel's own limit on links followed in one lookup.
        if depth > 40 {
            return Err(io::Error::other(format!(
                "{}: too many levels of symbolic links",
                path.display()
            )));
        }
        if !path.is_absolute() {
            return Err(io::Error::other(format!(
                "{}: not an absolute path",
                path.display()
            )));
        }
        if [Path::new("/proc"), Path::new("/sys"), Path::new("/dev")]
            .iter()
            .any(|special| path.starts_with(special))
        {
            return Err(io::Error::other(format!(
                "{}: the guest has its own /proc, /sys and /dev",
                path.display()
            )));
        }
        let mut real = PathBuf::from("/");
        for component in path.components() {
            match component {
                Component::Normal(name) => {
                    let next = real.join(name);
                    let metadata = fs::symlink_metadata(&next)
                        .map_err(|e| context(e, &next.display().to_string()))?;
                    if metadata.file_type().is_symlink() {
                        let target = fs::read_link(&next)?;
                        self.host_entry(&next, &metadata, target.as_os_str().as_bytes())?;
                        real = self.leading_to(&real.join(target), depth + 1)?;
                    } else {
                        if metadata.is_dir() {
                            self.host_entry(&next, &metadata, &[])?;
                        }
                        real = next;
                    }
                }
                // `real` has no links in it: `..` is its parent.
                Component::ParentDir => {
                    real.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Ok(real)
    }

    /// An entry for the host's `path` with its mode, owner and time, and `data`.
    fn host_entry(&mut self, path: &Path, metadata: &fs::Metadata, data: &[u8]) -> io::Result<()> {
        let name = guest_name(path);
        self.entry(
            &name,
            metadata.mode(),
            (metadata.uid(), metadata.gid(), metadata.mtime()),
            data,
        )
    }

    /// The host's regular file `path` (without links), streamed, and what it needs with `deps`.
    fn host_file(&mut self, path: &Path, metadata: &fs::Metadata, deps: bool) -> io::Result<()> {
        let name = guest_name(path);
        if !self.written.insert(PathBuf::from(&name)) {
            return Ok(());
        }
        let mut file = File::open(path).map_err(|e| context(e, &path.display().to_string()))?;
        // ELF executables and shared objects (not relocatable objects): e_type 2 or 3.
        let mut head = [0u8; 18];
        let is_linked_elf = file.read_exact(&mut head).is_ok()
            && head.starts_with(b"\x7fELF")
            && matches!(u16::from_le_bytes([head[16], head[17]]), 2 | 3);
        file.rewind()?;
        let owner = (metadata.uid(), metadata.gid(), metadata.mtime());
        self.header(&name, metadata.mode(), owner, metadata.len())?;
        let copied = io::copy(
            &mut (&mut file).take(metadata.len()),
            &mut WriteCounter(self),
        )?;
        if copied != metadata.len() {
            return Err(io::Error::other(format!(
                "{}: changed while it was packed",
                path.display()
            )));
        }
        self.pad()?;
        if deps && is_linked_elf {
            for library in needed_libraries(path)? {
                // ldd's list is already whole: no need to ask again for each library.
                self.host_path(&library, false)?;
            }
        }
        Ok(())
    }

    /// Everything in the host directory `dir` (without links), in name order; a link in it
    /// is kept with what it points to, a dangling one alone.
    fn host_tree(&mut self, dir: &Path, deps: bool) -> io::Result<()> {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| context(e, &dir.display().to_string()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<_>>()?;
        entries.sort();
        for path in entries {
            let metadata = fs::symlink_metadata(&path)?;
            let kind = metadata.file_type();
            if kind.is_dir() {
                self.host_entry(&path, &metadata, &[])?;
                self.host_tree(&path, deps)?;
            } else if kind.is_file() {
                self.host_file(&path, &metadata, deps)?;
            } else if kind.is_symlink() {
                if fs::metadata(&path).is_ok() {
                    self.host_path(&path, deps)?;
                } else {
                    let target = fs::read_link(&path)?;
                    self.host_entry(&path, &metadata, target.as_os_str().as_bytes())?;
                }
            }
            // Sockets, pipes and devices have no place in an initramfs.
        }
        Ok(())
    }

    /// Ends the archive; returns the writer and the archive's size.
    fn finish(mut self) -> io::Result<(W, u64)> {
        self.header("TRAILER!!!", 0, (0, 0, 0), 0)?;
        Ok((self.out, self.offset))
    }
}

/// Counts what `io::copy` writes through an archive, for its alignment.
struct WriteCounter<'a, W>(&'a mut Archive<W>);

impl<W: Write> Write for WriteCounter<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.out.flush()
    }
}

/// A host path's name in the archive: relative to /.
fn guest_name(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_owned()
}

/// The shared libraries and the dynamic loader that the ELF file `path` needs, as ldd lists
/// them: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`. Nothing for a static executable; a library ldd
/// cannot find is left out (the program fails the same way on the host).
fn needed_libraries(path: &Path) -> io::Result<Vec<PathBuf>> {
    let output = std::process::Command::new("ldd")
        .arg(path)
        .output()
        .map_err(|e| context(e, "ldd"))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = line.split_once(" => ").map_or(line, |(_, path)| path);
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
