use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use super::*;

fn msg(i: u64, size: usize) -> (String, Vec<u8>, bool) {
    (format!("t/{i}"), vec![7; size], i == 0)
}

/// Stamps, writes and queues `n` messages as the spooler does.
fn add(s: &mut Spool, p: &mut Pending, from: u64, n: u64, size: usize) {
    let records = s.stamp((from..from + n).map(|i| msg(i, size)));
    s.write(&records).unwrap();
    p.push(records);
}

fn topics(p: &Pending) -> Vec<String> {
    p.after(0).map(|r| r.topic.clone()).collect()
}

#[test]
fn appended_records_survive_a_restart_in_order_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec, Recovery::default());
    add(&mut s, &mut p, 0, 5, 2);
    p.ack(2);
    p.ack(1);
    p.ack(4); // out of order: 3 still pending
    s.persist(p.watermark()).unwrap();
    drop(s);
    let (_, p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        rec.pending, 3,
        "4 was acked above an unacked 3: resent, at least once"
    );
    assert_eq!(topics(&p), vec!["t/2", "t/3", "t/4"]);
    assert_eq!(p.after(0).next().unwrap().seq, 3);
}

#[test]
fn a_torn_tail_is_cut_and_the_good_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut p, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    add(&mut s, &mut p, 0, 3, 100);
    drop(s);
    let path = dir.path().join(LOG);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 40).unwrap();
    let (mut s, mut p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.pending, 2);
    assert!(rec.cut_bytes > 0);
    assert_eq!(topics(&p), vec!["t/0", "t/1"]);
    // Appending after the cut continues cleanly.
    let r = s.stamp([("t/new".to_string(), b"x".to_vec(), false)]);
    assert_eq!(r[0].seq, 3);
    s.write(&r).unwrap();
    p.push(r);
    drop(s);
    let (_, p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!((rec.pending, rec.cut_bytes), (3, 0));
    assert_eq!(topics(&p), vec!["t/0", "t/1", "t/new"]);
}

#[test]
fn corruption_in_the_middle_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut p, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    add(&mut s, &mut p, 0, 4, 50);
    drop(s);
    let path = dir.path().join(LOG);
    let mut data = std::fs::read(&path).unwrap();
    let one = data.len() / 4;
    data[one + one / 2] ^= 0xFF; // inside the second record
    std::fs::write(&path, &data).unwrap();
    let (_, p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(topics(&p), vec!["t/0"]);
    assert_eq!(rec.cut_bytes as usize, data.len() - one);
}

#[test]
fn the_bound_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut p, _) = Spool::open(dir.path(), 1000).unwrap();
    for i in 0..10 {
        add(&mut s, &mut p, i, 1, 200);
    }
    assert!(p.dropped >= 6, "{}", p.dropped);
    let left = topics(&p);
    assert_eq!(left.last().map(String::as_str), Some("t/9"));
    assert_eq!(left.len() as u64 + p.dropped, 10);
    s.persist(p.watermark()).unwrap();
    drop(s);
    // Dropped ones do not come back after a restart.
    let (_, p, _) = Spool::open(dir.path(), 1000).unwrap();
    assert_eq!(topics(&p), left);
}

#[test]
fn opening_applies_the_bound_while_reading_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut p, _) = Spool::open(dir.path(), 1 << 30).unwrap();
    add(&mut s, &mut p, 0, 1000, 500);
    drop(s);
    let bound = 20 * 530;
    let (mut s, p, rec) = Spool::open(dir.path(), bound).unwrap();
    assert!(p.bytes <= bound, "{} > {bound}", p.bytes);
    assert_eq!(rec.pending + rec.dropped as usize, 1000);
    assert_eq!(topics(&p).last().map(String::as_str), Some("t/999"));
    // The dropped ones are gone for good once the watermark is written.
    s.persist(p.watermark()).unwrap();
    drop(s);
    let (_, _, again) = Spool::open(dir.path(), 1 << 30).unwrap();
    assert_eq!(again.pending, rec.pending);
}

#[test]
fn garbage_instead_of_a_spool_is_recovered_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(LOG), b"this is not a spool at all").unwrap();
    std::fs::write(dir.path().join(ACKED), b"bad").unwrap();
    let (mut s, p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(rec.pending, 0);
    assert_eq!(rec.cut_bytes, 26);
    assert!(p.is_empty());
    assert_eq!(s.stamp([msg(0, 1)])[0].seq, 1);
}

#[test]
fn a_full_disk_is_an_error_and_the_log_stays_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _, _) = Spool::open(dir.path(), 1 << 20).unwrap();
    let full = OpenOptions::new().append(true).open("/dev/full").unwrap();
    if let Some(d) = &mut s.disk {
        d.log = full;
    }
    let r = s.stamp([msg(0, 1)]);
    let err = s.write(&r).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(s.log_bytes(), 0);
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (mut s, mut p, _) = Spool::open(&spool, 1 << 20).unwrap();
    add(&mut s, &mut p, 0, 1, 10);
    p.ack(1);
    s.persist(p.watermark()).unwrap();
    let mode = |f: &Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&spool), 0o700);
    assert_eq!(mode(&spool.join(LOG)), 0o600);
    assert_eq!(mode(&spool.join(ACKED)), 0o600);
    // A log left 0644 by an older version is made private.
    std::fs::set_permissions(spool.join(LOG), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(s);
    let _ = Spool::open(&spool, 1 << 20).unwrap();
    assert_eq!(mode(&spool.join(LOG)), 0o600);
}

/// Steady traffic to a healthy broker: every message acknowledged soon
/// after it is written, the watermark persisted now and then. The log
/// stays within the compaction bound however long it runs, and a crash
/// replays only what was unacknowledged.
#[test]
fn steady_acknowledged_traffic_keeps_the_log_small_and_the_replay_short() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, mut p, _) = Spool::open(dir.path(), 64 << 20).unwrap();
    let mut compactions = 0;
    let mut largest = 0;
    for i in 0..20_000u64 {
        add(&mut s, &mut p, i, 1, 400);
        // Acknowledged two messages later, as a window in flight would be.
        if i >= 2 {
            p.ack(i - 1);
        }
        if i % 6 == 0 {
            compactions += u32::from(s.persist(p.watermark()).unwrap());
        }
        largest = largest.max(s.log_bytes());
    }
    assert!(compactions > 10, "{compactions}");
    assert!(
        largest < 2 * COMPACT_MIN + 4096,
        "log grew to {largest} bytes"
    );
    drop(s); // a crash: nothing more is written
    let (_, p, rec) = Spool::open(dir.path(), 64 << 20).unwrap();
    assert!(rec.pending <= 8, "replayed {}", rec.pending);
    assert_eq!(topics(&p).last().map(String::as_str), Some("t/19999"));
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Any bytes as log and watermark: opening never panics, what it finds
    /// is in order, and appending and reopening works after it.
    #[test]
    fn any_bytes_open_without_panic(log in proptest::collection::vec(any::<u8>(), 0..2048),
                                    acked in proptest::collection::vec(any::<u8>(), 0..12)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG), &log).unwrap();
        std::fs::write(dir.path().join(ACKED), &acked).unwrap();
        let (mut s, mut p, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        let seqs: Vec<u64> = p.after(0).map(|r| r.seq).collect();
        prop_assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(rec.pending, seqs.len());
        let r = s.stamp([msg(1, 3)]);
        prop_assert!(r[0].seq > seqs.last().copied().unwrap_or(0));
        s.write(&r).unwrap();
        p.push(r);
        drop(s);
        let (_, p2, rec2) = Spool::open(dir.path(), 1 << 20).unwrap();
        prop_assert_eq!(rec2.cut_bytes, 0);
        prop_assert_eq!(topics(&p2), topics(&p));
    }

    /// A real log, torn at any byte and with any byte flipped: what comes
    /// back is a prefix of what was written.
    #[test]
    fn damaged_logs_keep_a_prefix(n in 1u64..40, cut in any::<prop::sample::Index>(),
                                  flip in any::<Option<(prop::sample::Index, u8)>>()) {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, mut p, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        add(&mut s, &mut p, 0, n, 20);
        drop(s);
        let path = dir.path().join(LOG);
        let mut data = std::fs::read(&path).unwrap();
        data.truncate(cut.index(data.len() + 1));
        if let Some((at, bits)) = flip && !data.is_empty() {
            let i = at.index(data.len());
            data[i] ^= bits.max(1);
        }
        std::fs::write(&path, &data).unwrap();
        let (_, back, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        let got: Vec<&Record> = back.after(0).collect();
        let all: Vec<&Record> = p.after(0).collect();
        prop_assert!(got.len() <= all.len());
        for (g, w) in got.iter().zip(&all) {
            prop_assert_eq!(*g, *w);
        }
    }
}
