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
//!
//! The modules, in the order a batch goes through them: [`kernel`] (the matrix), [`script`],
//! [`cases`], then [`host`], or for a guest [`initramfs`] (with [`cpio`] and [`files`]),
//! [`init`], [`guest`] (QEMU) and [`channel`] (what /init reports).

mod cases;
mod channel;
mod cpio;
mod files;
mod guest;
mod host;
mod init;
mod initramfs;
mod kernel;
mod script;

use std::{fmt, fs};

// The API, from the modules that hold it. A test binary uses part of it, and would be told
// that the rest is unused, as `dead_code` would tell it of the items themselves.
#[allow(unused_imports, reason = "each test binary uses part of the API")]
pub use self::{
    cases::{Case, run_matrix},
    guest::{Boot, BootError, boot},
    kernel::{Kernel, matrix},
    script::{DEFAULT_TIME_LIMIT, Script, ScriptOutput},
};

use super::receiver::Receiver;

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

    /// Whether its kernel has uprobe_multi links (Linux 6.6+), which spanprobe attaches
    /// through when it can; before, it falls back to perf-event uprobes, and refuses what only
    /// those links can do.
    pub fn has_uprobe_multi(&self) -> bool {
        let release = self.release();
        let mut numbers = release.split(['.', '-', '+']).map(str::parse::<u32>);
        match (numbers.next(), numbers.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (6, 6),
            // A release that does not start with its version would make every check that
            // depends on it wrong: said rather than guessed.
            _ => panic!("no version in the release {release:?}"),
        }
    }

    /// The address `$OTLP_HOST` has there.
    pub fn otlp_host(&self) -> &'static str {
        match self {
            Machine::Host => host::OTLP_HOST,
            Machine::Vm(_) => guest::OTLP_HOST,
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
        match self {
            Machine::Host => Ok(host::run(scripts).await),
            Machine::Vm(kernel) => guest::run(kernel, scripts).await,
        }
    }
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
