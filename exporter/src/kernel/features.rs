//! What spanprobe needs of the kernel, checked before loading anything so that a kernel
//! without it gets a message naming what is missing rather than a verifier or syscall error.

use std::path::Path;

use aya::maps::MapType;

/// A kernel facility spanprobe needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// The perf `uprobe` PMU, through which uprobes and uretprobes are attached.
    Uprobes,
    /// BPF ring buffers, which completed calls travel through.
    RingBuffer,
    /// Kernel BTF, which the programs are relocated against.
    Btf,
}

impl Feature {
    const ALL: [Feature; 3] = [Feature::Uprobes, Feature::RingBuffer, Feature::Btf];

    /// Whether this kernel has it. `true` when that cannot be told: the load then says more.
    fn present(self) -> bool {
        match self {
            Self::Uprobes => Path::new("/sys/bus/event_source/devices/uprobe/type").exists(),
            Self::RingBuffer => aya::sys::is_map_supported(MapType::RingBuf).unwrap_or(true),
            Self::Btf => Path::new("/sys/kernel/btf/vmlinux").exists(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Uprobes => {
                "uprobes (no /sys/bus/event_source/devices/uprobe: a kernel built with \
                 CONFIG_UPROBE_EVENTS)"
            }
            Self::RingBuffer => "BPF ring buffers (Linux 5.8 or later)",
            Self::Btf => {
                "BTF (no /sys/kernel/btf/vmlinux: a kernel built with CONFIG_DEBUG_INFO_BTF)"
            }
        }
    }
}

/// The kernel lacks what spanprobe needs.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("this kernel lacks what spanprobe needs: {}", describe(.0))]
pub struct MissingFeatures(pub Vec<Feature>);

fn describe(missing: &[Feature]) -> String {
    let names: Vec<_> = missing.iter().map(|feature| feature.describe()).collect();
    names.join("; ")
}

/// Checks every needed feature and names all that are missing.
pub fn check() -> Result<(), MissingFeatures> {
    missing(Feature::present)
}

fn missing(present: impl Fn(Feature) -> bool) -> Result<(), MissingFeatures> {
    let missing: Vec<_> = Feature::ALL.into_iter().filter(|f| !present(*f)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingFeatures(missing))
    }
}

/// The running kernel's release (`uname -r`), as errors and `check --load` name it.
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| "(unknown release)".to_owned(),
        |release| release.trim().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_missing_feature() {
        let err = missing(|f| f == Feature::Btf).unwrap_err();
        assert_eq!(err.0, [Feature::Uprobes, Feature::RingBuffer]);
        assert_eq!(
            err.to_string(),
            "this kernel lacks what spanprobe needs: uprobes (no \
             /sys/bus/event_source/devices/uprobe: a kernel built with CONFIG_UPROBE_EVENTS); BPF \
             ring buffers (Linux 5.8 or later)"
        );
        assert_eq!(missing(|_| true), Ok(()));
    }

    /// The machines this is developed and tested on have everything.
    #[test]
    fn this_kernel_has_what_is_needed() {
        assert_eq!(check(), Ok(()));
    }
}
