//! The tests that need root (they load eBPF programs, through `spanprobe run` or the kernel
//! matrix, or change users and capabilities) skip with a printed reason when the effective user
//! is not root, so that the tests that need no privileges run on a contributor's machine. CI
//! runs as root and so runs them all; `SPANPROBE_TESTS_REQUIRE_ROOT=1` turns a skip into a
//! failure, for a run that must not skip.
//!
//! Rust's test harness has no runtime skip: a skipped test returns early and is reported as
//! passed, after the line printed here.

use std::io::Write as _;

/// Returns early from the test it is in, with a line on standard error saying why, when the
/// effective user is not root: `needs_root!()` for a test that loads eBPF programs,
/// `needs_root!("it ...")` for another reason.
#[allow(
    unused_macros,
    reason = "a test binary whose tests all run without root uses it not"
)]
macro_rules! needs_root {
    () => {
        $crate::support::needs_root!("it loads eBPF programs")
    };
    ($why:expr) => {
        if $crate::support::root::skip_unless_root($why) {
            return;
        }
    };
}
pub(crate) use needs_root;

/// Whether the current test is to be skipped, for it needs root `why` and the effective user is
/// not root; then says so on standard error.
pub fn skip_unless_root(why: &str) -> bool {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return false;
    }
    // libtest runs each test on a thread named after it.
    let current = std::thread::current();
    let test = current
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("test");
    let line = format!("skipped {test}: needs root ({why}); the effective uid is {uid}");
    if std::env::var_os("SPANPROBE_TESTS_REQUIRE_ROOT").is_some_and(|v| v == "1") {
        panic!("{line}, and SPANPROBE_TESTS_REQUIRE_ROOT=1");
    }
    // Straight to the process's standard error: the harness keeps what `eprintln!` prints and
    // shows it only for a test that fails.
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    true
}
