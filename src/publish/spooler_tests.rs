use super::*;
use crate::publish::spool::COMPACT_MIN;

/// A client that takes everything; the test plays the broker.
#[derive(Default)]
struct Client {
    queued: usize,
}

impl Submit for Client {
    fn publish(&mut self, _: &str, _: &[u8], _: bool) -> bool {
        self.queued += 1;
        true
    }
}

/// Writes what the client queued (packet ids in order) and acknowledges it.
fn broker_acks(outbox: &Mutex<Outbox>, c: &mut Client, next_id: &mut u16) {
    let mut o = lock(outbox);
    let ids: Vec<u16> = (0..c.queued)
        .map(|_| {
            *next_id = next_id.wrapping_add(1).max(1);
            o.sent(*next_id);
            *next_id
        })
        .collect();
    c.queued = 0;
    for id in ids {
        o.acked(id, c);
    }
}

fn detection(i: u64) -> (String, Vec<u8>) {
    (format!("visiond/n/cam/detections#{i}"), vec![b'{'; 400])
}

/// 30 QoS 1 messages a second to a healthy broker for ten simulated
/// minutes, a message in every turn (the spooler is never idle): the
/// watermark is persisted and the log compacted all the same, and a crash
/// at the end replays only what the broker had not acknowledged.
#[test]
fn under_steady_traffic_the_log_stays_small_and_a_crash_replays_little() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, pending, _) = Spool::open(dir.path(), 64 << 20).unwrap();
    let outbox = Mutex::new(Outbox::new(pending));
    let counters = MqttCounters::default();
    let mut c = Client::default();
    lock(&outbox).connected(&mut c);
    let t0 = Instant::now();
    let mut sp = Spooler::new(spool, t0);
    let mut id = 0u16;
    let mut largest = 0;
    for i in 0..30 * 600u64 {
        let now = t0 + Duration::from_millis(i * 1000 / 30);
        sp.turn(vec![detection(i)], now, &outbox, &mut c, &counters)
            .unwrap();
        // The broker acknowledges everything but the latest few.
        if i % 3 == 0 {
            broker_acks(&outbox, &mut c, &mut id);
        }
        largest = largest.max(sp.spool.log_bytes());
    }
    assert!(
        largest < 2 * COMPACT_MIN + 8192,
        "the log grew to {largest} bytes under steady traffic"
    );
    let on_disk = std::fs::metadata(dir.path().join("spool.log"))
        .unwrap()
        .len();
    assert!(on_disk < 2 * COMPACT_MIN + 8192, "{on_disk}");
    assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
    drop(sp); // kill -9: nothing more reaches the disk
    let (_, replay, rec) = Spool::open(dir.path(), 64 << 20).unwrap();
    // Unacknowledged at the crash: at most the last 3, plus what arrived
    // since the last persist (one TICK at 30 messages a second).
    assert!(rec.pending <= 3 + 7, "replayed {}", rec.pending);
    assert!(!replay.is_empty());
}

/// A spool folder that vanished: the error comes back, and the message
/// is kept in memory and counted as spooled.
#[test]
fn a_refused_write_keeps_the_message_in_memory_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, pending, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    let outbox = Mutex::new(Outbox::new(pending));
    let counters = MqttCounters::default();
    let mut c = Client::default();
    lock(&outbox).connected(&mut c);
    let t0 = Instant::now();
    let mut sp = Spooler::new(spool, t0);
    sp.turn(vec![detection(0)], t0, &outbox, &mut c, &counters)
        .unwrap();
    broker_acks(&outbox, &mut c, &mut 0);
    // The folder vanishes: the watermark due next cannot be written.
    std::fs::remove_dir_all(dir.path()).unwrap();
    let r = sp.turn(vec![detection(1)], t0 + TICK, &outbox, &mut c, &counters);
    assert!(r.is_err());
    assert_eq!(lock(&outbox).spooled(), 1);
    assert_eq!(counters.spooled.load(Ordering::Relaxed), 1);
}

#[test]
fn an_idle_spooler_persists_on_its_tick_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, pending, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    let outbox = Mutex::new(Outbox::new(pending));
    let counters = MqttCounters::default();
    let mut c = Client::default();
    lock(&outbox).connected(&mut c);
    let t0 = Instant::now();
    let mut sp = Spooler::new(spool, t0);
    sp.turn(vec![detection(0)], t0, &outbox, &mut c, &counters)
        .unwrap();
    let mut id = 0;
    broker_acks(&outbox, &mut c, &mut id);
    let acked = || std::fs::read(dir.path().join("acked")).ok();
    sp.turn(Vec::new(), t0 + TICK / 2, &outbox, &mut c, &counters)
        .unwrap();
    assert_eq!(acked(), None, "not yet due");
    sp.turn(Vec::new(), t0 + TICK, &outbox, &mut c, &counters)
        .unwrap();
    assert_eq!(acked(), Some(1u64.to_le_bytes().to_vec()));
}
