//! The spooler thread: appends QoS 1 messages to the spool in groups (one
//! sync per group, outside the outbox lock, so the network loop never waits
//! on the disk), hands them to the outbox, and persists the acknowledgement
//! watermark on a timer whatever the traffic.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tracing::{info, warn};

use super::counters::MqttCounters;
use super::outbox::{Outbox, Submit};
use super::spool::Spool;
use crate::sync::locked as lock;

/// Messages appended with one sync, at most.
const GROUP: usize = 256;
/// How often the watermark is persisted (and the log compacted), whatever
/// the traffic, and a full client queue retried.
pub const TICK: Duration = Duration::from_millis(200);

/// Keeps the spool's counters current (called with the outbox locked).
pub fn count(counters: &MqttCounters, o: &Outbox, dropped_before: u64) {
    counters
        .spooled
        .store(o.spooled() as u64, Ordering::Relaxed);
    let lost = o.dropped().saturating_sub(dropped_before);
    if lost > 0 {
        counters.dropped.fetch_add(lost, Ordering::Relaxed);
    }
}

/// The spooler thread's state: the disk side of the spool, and when the
/// watermark is persisted next.
pub struct Spooler {
    spool: Spool,
    next_persist: Instant,
}

impl Spooler {
    pub fn new(spool: Spool, now: Instant) -> Self {
        Self {
            spool,
            next_persist: now + TICK,
        }
    }

    /// One turn at `now`: writes and syncs `group` outside the outbox lock,
    /// then queues it in the outbox; every TICK, busy or not, persists the
    /// watermark (compacting the log) and retries a full client queue.
    fn turn(
        &mut self,
        group: Vec<(String, Vec<u8>)>,
        now: Instant,
        outbox: &Mutex<Outbox>,
        c: &mut impl Submit,
        counters: &MqttCounters,
    ) -> std::io::Result<()> {
        let mut result = Ok(());
        if !group.is_empty() {
            let records = self
                .spool
                .stamp(group.into_iter().map(|(t, p)| (t, p, false)));
            // Kept in memory even when the disk refused them: only a restart loses them then.
            result = self.spool.write(&records);
            let mut o = lock(outbox);
            let before = o.dropped();
            o.append(records, c);
            count(counters, &o, before);
        }
        if now >= self.next_persist {
            self.next_persist = now + TICK;
            let watermark = {
                let mut o = lock(outbox);
                o.fill(c);
                o.watermark()
            };
            result = result.and(self.spool.persist(watermark).map(|_| ()));
        }
        result
    }
}

/// Appends what arrives to the spool, a group per sync, and hands it to the
/// client. Returns the spool once every sender is gone and everything
/// received is on disk.
pub fn run(
    rx: &Receiver<(String, Vec<u8>)>,
    outbox: &Mutex<Outbox>,
    c: &mut impl Submit,
    counters: &MqttCounters,
    mut sp: Spooler,
) -> Spool {
    let mut failing = false;
    loop {
        let wait = sp.next_persist.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let group: Vec<_> = first
            .into_iter()
            .chain(rx.try_iter().take(GROUP - 1))
            .collect();
        match sp.turn(group, Instant::now(), outbox, c, counters) {
            Err(e) if !failing => {
                warn!(error = %e, "cannot write the MQTT spool; QoS 1 messages are kept in memory only");
                failing = true;
            }
            Ok(()) if failing => {
                info!("MQTT spool writable again");
                failing = false;
            }
            _ => {}
        }
    }
    let watermark = lock(outbox).watermark();
    if let Err(e) = sp.spool.persist(watermark) {
        warn!(error = %e, "could not write the spool's acknowledgements");
    }
    sp.spool
}

#[cfg(test)]
#[path = "spooler_tests.rs"]
mod tests;
