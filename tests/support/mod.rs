//! Shared by the integration tests: building the programs they trace, running `spanprobe`,
//! and the in-process OTLP receiver spans are checked at.
#![allow(dead_code, reason = "each test binary uses part of the support code")]

pub mod context;
pub mod pool;
pub mod receiver;
pub mod root;
pub mod scenario;
pub mod spawn;
pub mod usdt;
pub mod vm;

#[allow(
    unused_imports,
    reason = "a test binary whose tests all run without root uses it not"
)]
pub(crate) use root::needs_root;

use std::{
    path::{Path, PathBuf},
    process::Output,
};

/// The `spanprobe` binary under test.
pub fn spanprobe() -> &'static str {
    env!("CARGO_BIN_EXE_spanprobe")
}

/// The repository root.
/// A loopback port free now: bound, noted, let go, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles C source with gcc into `dir/name`, with the demo's default flags plus `flags`.
pub fn compile_c(source: &Path, dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let output = dir.join(name);
    let status = std::process::Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-fno-omit-frame-pointer",
            "-fno-optimize-sibling-calls",
        ])
        .arg("-o")
        .arg(&output)
        .arg(source)
        // After the source: libraries (-l) are resolved in order.
        .args(flags)
        .output()
        .expect("gcc runs");
    assert!(
        status.status.success(),
        "gcc failed on {} with {flags:?}: {}",
        source.display(),
        String::from_utf8_lossy(&status.stderr)
    );
    output
}

/// Builds the bundled demo program into `dir`.
pub fn build_demo(dir: &Path) -> PathBuf {
    compile_c(&repo_root().join("examples/demo/demo.c"), dir, "demo", &[])
}

/// Writes `yaml` as `dir/spanprobe.yaml`.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("spanprobe.yaml");
    std::fs::write(&path, yaml).expect("config written");
    path
}

/// Runs `spanprobe run --config CONFIG -- COMMAND...` to completion.
pub async fn run(config: &Path, command: &[&str]) -> Output {
    run_env(config, command, &[]).await
}

/// [`run`] with environment variables `env` set for spanprobe (and so for the command).
pub async fn run_env(config: &Path, command: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(spanprobe());
    cmd.arg("run").arg("--config").arg(config);
    cmd.envs(env.iter().copied());
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    cmd.output().await.expect("spanprobe runs")
}

/// Runs spanprobe with arbitrary arguments to completion.
pub async fn spanprobe_with(args: &[&str]) -> Output {
    tokio::process::Command::new(spanprobe())
        .args(args)
        .output()
        .await
        .expect("spanprobe runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The pid the demo reports on its last line (`demo[PID]: ...`).
pub fn demo_pid(output: &Output) -> i64 {
    let out = stdout(output);
    let line = out
        .lines()
        .find(|l| l.starts_with("demo["))
        .expect("demo printed its pid");
    line["demo[".len()..line.find(']').expect("closing bracket")]
        .parse()
        .expect("numeric pid")
}

/// The test programs' sources.
pub fn programs() -> PathBuf {
    repo_root().join("tests/programs")
}

/// Compiles C++ source with g++ into `dir/name`, with frame pointers.
pub fn compile_cpp(source: &Path, dir: &Path, name: &str) -> PathBuf {
    let output = dir.join(name);
    let status = std::process::Command::new("g++")
        .args(["-O2", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&output)
        .arg(source)
        .status()
        .expect("g++ runs");
    assert!(status.success(), "g++ failed on {}", source.display());
    output
}

/// Builds `libgreet.so` and `use_greet`, which calls it, into `dir`: (library, program).
pub fn build_greet(dir: &Path) -> (PathBuf, PathBuf) {
    let library = compile_c(
        &programs().join("greet.c"),
        dir,
        "libgreet.so",
        &["-fPIC", "-shared"],
    );
    let user = compile_c(
        &programs().join("use_greet.c"),
        dir,
        "use_greet",
        &[
            &format!("-L{}", dir.display()),
            &format!("-Wl,-rpath,{}", dir.display()),
            "-lgreet",
        ],
    );
    (library, user)
}

/// The Go program in `tests/programs/<program>`, built into `dir` as `name` with Debian's Go
/// toolchain (offline: the programs have no dependencies).
pub fn go_build(dir: &Path, program: &str, name: &str) -> PathBuf {
    let output = dir.join(name);
    let built = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&output)
        .arg(".")
        .current_dir(programs().join(program))
        .output()
        .expect("go runs (scripts/setup.sh installs golang-go)");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    output
}

/// A C program with the section the Go linker writes, standing in for a Go binary (there is
/// no Go toolchain here). `handler` is called twice.
pub fn build_fake_go(dir: &Path) -> PathBuf {
    let source = dir.join("fakego.c");
    std::fs::write(
        &source,
        "__attribute__((section(\".go.buildinfo\"), used)) static const char info[32] = \"\\xff Go buildinf:\";\n\
         __attribute__((noinline)) int handler(int x) { return x + 1; }\n\
         int main(void) { return handler(0) + handler(1) - 3; }\n",
    )
    .expect("source written");
    compile_c(&source, dir, "fakego", &[])
}

/// How long a test waits for the spans a sidecar exports to arrive.
pub const SPANS_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The address `spanprobe symbols` shows for `function` of `binary` (for a PIE, its file offset).
pub async fn symbol_address(binary: &Path, function: &str) -> u64 {
    let symbols = spanprobe_with(&["symbols", binary.to_str().unwrap(), function]).await;
    stdout(&symbols)
        .split_whitespace()
        .next()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .expect("symbols shows the address")
}

/// The numbers spanprobe reports at exit, as `key=value` pairs of its log lines.
pub fn reported(stderr: &str, key: &str) -> u64 {
    let marker = format!(" {key}=");
    let at = stderr
        .rfind(&marker)
        .unwrap_or_else(|| panic!("no {key} in {stderr}"));
    stderr[at + marker.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// How long a test waits for spanprobe to attach or to exit.
pub const SIDECAR_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// `spanprobe run` without a command (sidecar mode), attached to every process; its stderr is
/// kept for the end.
pub struct Sidecar {
    child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<String>,
    /// What it has written to stderr so far.
    so_far: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Sidecar {
    /// Starts `spanprobe run --config CONFIG ARGS...` and returns once its probes are attached.
    pub async fn start(config: &Path, args: &[&str]) -> Sidecar {
        use tokio::io::{AsyncBufReadExt as _, BufReader};
        let mut child = tokio::process::Command::new(spanprobe())
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spanprobe starts");
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let (attached_tx, attached_rx) = tokio::sync::oneshot::channel();
        let so_far = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let written = std::sync::Arc::clone(&so_far);
        // Drained to the end, so that spanprobe never blocks on it.
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let mut attached = Some(attached_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("attached")
                    && let Some(tx) = attached.take()
                {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
                if let Ok(mut written) = written.lock() {
                    written.push_str(&line);
                    written.push('\n');
                }
            }
            text
        });
        match tokio::time::timeout(SIDECAR_WAIT, attached_rx).await {
            Ok(Ok(())) => Sidecar {
                child,
                stderr,
                so_far,
            },
            Ok(Err(_)) => panic!(
                "spanprobe ended before attaching: {}",
                stderr.await.unwrap_or_default()
            ),
            Err(_) => panic!("spanprobe did not attach within {SIDECAR_WAIT:?}"),
        }
    }

    /// Waits until spanprobe has written `text` to stderr, for at most `timeout`; whether it
    /// has.
    pub async fn wait_for_log(&self, text: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.so_far.lock().is_ok_and(|so_far| so_far.contains(text)) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// spanprobe's pid.
    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// Sends SIGINT, waits for spanprobe to exit with status 0, and returns its whole stderr.
    pub async fn stop(self) -> String {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        self.wait().await
    }

    /// Waits for spanprobe to exit with status 0 (started with a command: once the command
    /// has), and returns its whole stderr.
    pub async fn wait(mut self) -> String {
        let status = tokio::time::timeout(SIDECAR_WAIT, self.child.wait())
            .await
            .expect("spanprobe exits in time")
            .expect("waited");
        let stderr = self.stderr.await.expect("stderr read");
        assert_eq!(status.code(), Some(0), "{stderr}");
        stderr
    }
}
