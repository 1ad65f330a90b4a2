//! Reads the ring buffer asynchronously. The eBPF side wakes us only once a threshold of data
//! is pending, so we also drain on a short timer; every drain consumes all pending records.
//! Calls that userspace ends for the kernel side ([`crate::events::orphans`]) come in beside.

use std::time::Duration;

use spanprobe_common::CallEvent;

use super::ring::Ring;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, oneshot},
    time::MissedTickBehavior,
};

/// What the reader hands on.
pub enum Input<'a> {
    /// A record from the ring buffer.
    Record(&'a [u8]),
    /// A call userspace ended, with no captured memory.
    Ended(&'a CallEvent),
}

/// How long a record may wait in the ring buffer when the wakeup threshold is not reached.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Passes every record, and every call `ended` brings, to `handle` until `stop` fires, then
/// drains what is left of both and returns.
pub async fn read_events(
    ring: Ring,
    mut stop: oneshot::Receiver<()>,
    mut ended: mpsc::UnboundedReceiver<CallEvent>,
    mut handle: impl FnMut(Input<'_>),
) -> std::io::Result<()> {
    // SAFETY: the ring buffer owns its map fd and keeps it open, unchanged, for as long as it
    // lives, and the AsyncFd owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut handle);
                guard.clear_ready();
            }
            _ = tick.tick() => drain(ring.get_mut(), &mut handle),
            Some(event) = ended.recv() => handle(Input::Ended(&event)),
        }
    }
    // Everything submitted before the stop is in the buffer now: take it all.
    drain(ring.get_mut(), &mut handle);
    while let Ok(event) = ended.try_recv() {
        handle(Input::Ended(&event));
    }
    Ok(())
}

fn drain(ring: &mut Ring, handle: &mut impl FnMut(Input<'_>)) {
    ring.drain(|record| handle(Input::Record(record)));
}
