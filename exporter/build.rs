//! Builds the eBPF programs with the nightly toolchain and leaves the object in OUT_DIR, where
//! `src/bpf.rs` embeds it: `spanprobe` is one self-contained file.
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let ebpf_dir = Path::new(manifest_dir).join("../ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("eBPF crate path is not UTF-8: {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "spanprobe-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
