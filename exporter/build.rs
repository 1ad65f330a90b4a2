//! Builds the eBPF programs with the nightly pinned in `ebpf/rust-toolchain.toml` and leaves the
//! object in OUT_DIR, where `src/bpf.rs` embeds it: `spanprobe` is one self-contained file.
use std::path::Path;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let ebpf_dir = Path::new(manifest_dir).join("../ebpf");
    let toolchain_file = ebpf_dir.join("rust-toolchain.toml");
    println!("cargo::rerun-if-changed={}", toolchain_file.display());
    let toolchain = std::fs::read_to_string(&toolchain_file)
        .with_context(|| format!("reading {}", toolchain_file.display()))?;
    let channel = channel(&toolchain)
        .with_context(|| format!("no `channel = \"...\"` in {}", toolchain_file.display()))?;
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("eBPF crate path is not UTF-8: {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "spanprobe-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(channel),
    )
}

/// The `channel` of a rust-toolchain.toml (one `key = "value"` line; no TOML parser needed).
fn channel(toolchain: &str) -> Option<&str> {
    toolchain.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "channel").then(|| value.trim().trim_matches('"'))
    })
}
