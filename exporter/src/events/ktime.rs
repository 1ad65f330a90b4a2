//! Kernel time to wall time. The eBPF programs stamp calls with `bpf_ktime_get_ns`, which is
//! `CLOCK_MONOTONIC`; spans need wall-clock (`SystemTime`) timestamps.

use std::time::{Duration, SystemTime};

/// Maps `CLOCK_MONOTONIC` nanoseconds to wall time, using one offset sampled at start.
///
/// One offset keeps durations exact (end − start is the kernel's own difference) and keeps
/// spans of one run consistent with each other even if NTP steps the wall clock later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootClock {
    /// Wall-clock nanoseconds since the Unix epoch at monotonic time 0.
    epoch_offset_ns: u128,
}

impl BootClock {
    /// Samples both clocks now. The wall clock is read between two monotonic reads and paired
    /// with their midpoint, which bounds the pairing error by half the (sub-microsecond) gap.
    pub fn sample() -> Self {
        let before = monotonic_ns();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let after = monotonic_ns();
        let midpoint = u128::from(before) + u128::from(after - before) / 2;
        Self {
            epoch_offset_ns: wall.saturating_sub(midpoint),
        }
    }

    /// A clock whose monotonic zero is `epoch_offset_ns` after the Unix epoch (for tests).
    pub const fn with_offset(epoch_offset_ns: u128) -> Self {
        Self { epoch_offset_ns }
    }

    /// The wall-clock time of a `CLOCK_MONOTONIC` timestamp.
    pub fn to_system_time(&self, monotonic_ns: u64) -> SystemTime {
        let since_epoch = self.epoch_offset_ns + u128::from(monotonic_ns);
        let secs = u64::try_from(since_epoch / 1_000_000_000).unwrap_or(u64::MAX);
        // The remainder is below 1e9, so it fits in u32.
        let nanos = (since_epoch % 1_000_000_000) as u32;
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of the kernel side's timestamps.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_with_the_offset() {
        let clock = BootClock::with_offset(1_700_000_000_123_456_789);
        let t = clock.to_system_time(2_000_000_001);
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since, Duration::new(1_700_000_002, 123_456_790));
    }

    #[test]
    fn keeps_durations_exact() {
        let clock = BootClock::sample();
        let start = clock.to_system_time(5_000_000_000);
        let end = clock.to_system_time(5_000_001_234);
        assert_eq!(
            end.duration_since(start).unwrap(),
            Duration::from_nanos(1_234)
        );
    }

    #[test]
    fn sampled_clock_agrees_with_the_wall_clock() {
        let clock = BootClock::sample();
        let converted = clock.to_system_time(monotonic_ns());
        let now = SystemTime::now();
        let skew = now
            .duration_since(converted)
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_millis(50), "skew {skew:?}");
    }
}
