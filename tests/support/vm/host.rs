//! Scripts on the host's own kernel: `sh -c`, one after the other, each in a process group of
//! its own.

use std::{os::unix::process::ExitStatusExt as _, process::Stdio, time::Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::{Script, ScriptOutput, script::each_took};
use crate::support::spanprobe;

/// `$OTLP_HOST` on the host: the receivers listen on its loopback.
pub(super) const OTLP_HOST: &str = "127.0.0.1";

/// Runs `scripts` one after the other and returns their outputs, in the same order.
pub(super) async fn run(scripts: &[Script]) -> Vec<ScriptOutput> {
    let started = Instant::now();
    let mut outputs = Vec::with_capacity(scripts.len());
    for script in scripts {
        outputs.push(run_one(script).await);
    }
    // Seen with --nocapture: what the host costs, to compare with each kernel.
    eprintln!(
        "host: {} scripts in {:.1?} ({})",
        scripts.len(),
        started.elapsed(),
        each_took(&outputs)
    );
    outputs
}

/// Runs `script` with `sh -c` in its own process group, killing the group at its time limit,
/// and, when it exits, whatever it left running (which would hold its output pipes open).
async fn run_one(script: &Script) -> ScriptOutput {
    let started = Instant::now();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script.text)
        .current_dir("/")
        .env("OTLP_HOST", OTLP_HOST)
        .env("SPANPROBE", spanprobe())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("sh starts");
    let group = child.id().expect("a started child has a pid") as i32;
    let stdout = read_all(child.stdout.take().expect("piped"));
    let stderr = read_all(child.stderr.take().expect("piped"));
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

/// Reads `pipe` to its end in a task of its own, so that neither of a script's pipes fills up
/// while the other is read.
fn read_all(mut pipe: impl AsyncRead + Unpin + Send + 'static) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes).await;
        bytes
    })
}
