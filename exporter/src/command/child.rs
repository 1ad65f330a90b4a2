//! Starting the traced command so that not one of its calls is missed: the child is forked,
//! reports its pid, and waits at a gate before `exec` until its pid is in the kernel-side
//! filter.

use std::{
    ffi::OsString,
    io::{self, Read as _, Write as _},
    num::NonZeroU32,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    process::{Child, Command, ExitStatus},
};

use tokio::task::JoinHandle;

use crate::binary::locate::find_in_path;

/// A forked child held before `exec`.
#[derive(Debug)]
pub struct GatedChild {
    pid: NonZeroU32,
    gate: io::PipeWriter,
    spawn: JoinHandle<io::Result<Child>>,
}

/// The traced command, running.
#[derive(Debug)]
pub struct RunningChild {
    child: Child,
}

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start `{}`", .program.to_string_lossy())]
pub struct SpawnError {
    pub program: OsString,
    #[source]
    pub source: io::Error,
}

/// The file `program` names, as `exec` will look it up (a path, or a program in PATH): a
/// command that cannot start is said before any probe is attached.
pub fn find_program(program: &std::ffi::OsStr) -> Result<std::path::PathBuf, SpawnError> {
    let (found, missing) = if program.as_encoded_bytes().contains(&b'/') {
        let path = std::path::Path::new(program);
        (
            Some(path.to_owned()).filter(|path| path.is_file()),
            "no such file",
        )
    } else {
        (find_in_path(program), "no such program in PATH")
    };
    match found {
        // As /proc/PID/exe will show it.
        Some(found) => Ok(found.canonicalize().unwrap_or(found)),
        None => Err(SpawnError {
            program: program.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, missing),
        }),
    }
}

impl GatedChild {
    /// Forks `argv`; returns once the child's pid is known, before it runs anything.
    pub async fn spawn(argv: &[OsString]) -> Result<Self, SpawnError> {
        let program = argv.first().cloned().unwrap_or_default();
        let error = |source| SpawnError {
            program: program.clone(),
            source,
        };
        let (mut pid_reader, pid_writer) = io::pipe().map_err(error)?;
        let (gate_reader, gate) = io::pipe().map_err(error)?;
        let mut command = Command::new(&program);
        command.args(&argv[1..]);
        let (pid_fd, gate_fd, gate_writer_fd) = (
            pid_writer.as_raw_fd(),
            gate_reader.as_raw_fd(),
            gate.as_raw_fd(),
        );
        // SAFETY: the hook only makes async-signal-safe calls (close, getpid, write, read) and
        // does not allocate, as is required between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Without our copy of the gate's write end, a spanprobe that dies makes the
                // read below see end-of-file instead of hanging.
                libc::close(gate_writer_fd);
                let pid = libc::getpid().to_ne_bytes();
                if libc::write(pid_fd, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                    return Err(io::Error::last_os_error());
                }
                let mut byte = 0u8;
                loop {
                    match libc::read(gate_fd, (&raw mut byte).cast(), 1) {
                        1 => return Ok(()),
                        -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                        _ => return Err(io::Error::from_raw_os_error(libc::ECANCELED)),
                    }
                }
            });
        }
        // `spawn` returns only after exec, which waits for the gate: run it on its own thread.
        // The thread keeps the child's pipe ends open until the fork has happened.
        let spawn = tokio::task::spawn_blocking(move || {
            let child = command.spawn();
            drop((pid_writer, gate_reader));
            child
        });
        let pid = tokio::task::spawn_blocking(move || {
            let mut pid = [0u8; 4];
            pid_reader
                .read_exact(&mut pid)
                .map(|()| i32::from_ne_bytes(pid))
        })
        .await
        .map_err(|e| error(io::Error::other(e)))?;
        match pid.ok().and_then(|pid| NonZeroU32::new(pid as u32)) {
            Some(pid) => Ok(Self { pid, gate, spawn }),
            // The fork itself failed: the spawn result says why.
            None => {
                let source = match spawn.await {
                    Ok(Err(e)) => e,
                    Ok(Ok(_)) => io::Error::other("child did not report its pid"),
                    Err(e) => io::Error::other(e),
                };
                Err(error(source))
            }
        }
    }

    pub fn pid(&self) -> NonZeroU32 {
        self.pid
    }

    /// Opens the gate: the child execs the command.
    pub async fn start(mut self, program: &OsString) -> Result<RunningChild, SpawnError> {
        let error = |source| SpawnError {
            program: program.clone(),
            source,
        };
        self.gate.write_all(&[1]).map_err(error)?;
        let child = self.spawn.await.map_err(|e| error(io::Error::other(e)))?;
        Ok(RunningChild {
            child: child.map_err(error)?,
        })
    }
}

impl RunningChild {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the command to exit.
    pub async fn wait(mut self) -> io::Result<ExitStatus> {
        tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .map_err(io::Error::other)?
    }
}

/// Sends `signal` to process `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// The exit code a shell would report for `status`: the code, or 128 + the signal number.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[tokio::test]
    async fn child_waits_at_the_gate_then_runs() {
        let dir = std::env::temp_dir().join(format!("spanprobe-gate-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let script = format!("touch {}", dir.display());
        let gated = GatedChild::spawn(&argv(&["sh", "-c", &script]))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!dir.exists(), "command ran before the gate opened");
        let child = gated.start(&"sh".into()).await.unwrap();
        let status = child.wait().await.unwrap();
        assert!(status.success());
        assert!(dir.exists());
        std::fs::remove_file(&dir).unwrap();
    }

    #[tokio::test]
    async fn reports_the_pid_the_command_runs_as() {
        let gated = GatedChild::spawn(&argv(&["sh", "-c", "exit 3"]))
            .await
            .unwrap();
        let pid = gated.pid().get();
        let child = gated.start(&"sh".into()).await.unwrap();
        assert_eq!(child.pid(), pid);
        assert_eq!(exit_code(child.wait().await.unwrap()), 3);
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_naming_it() {
        let gated = GatedChild::spawn(&argv(&["/nonexistent/program"]))
            .await
            .unwrap();
        let err = gated
            .start(&"/nonexistent/program".into())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot start `/nonexistent/program`"),
            "{err}"
        );
    }
}
