//! The on-disk spool for QoS 1 messages (`mqtt.spool`): appended and synced
//! before a message counts as sent, removed only once acknowledged, replayed
//! in order after a reconnect or a restart, bounded (the oldest go first).
//!
//! Layout of the folder:
//! - `spool.log`: records, each `magic | body length | crc32(body) | body`
//!   with body `seq u64 | retain u8 | topic length u16 | topic | payload`
//!   (little-endian). A torn or corrupt tail is cut off at the last good
//!   record when the spool is opened: the good records are kept.
//! - `acked`: the highest sequence number below which everything was
//!   acknowledged, replaced atomically (write, sync, rename).
//!
//! Without a folder the spool lives in memory only: same order and bound,
//! but a restart loses it.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x5053_4456; // "VDSP"
const HEADER: usize = 12;
/// A record larger than this is corruption, not a message.
const MAX_BODY: usize = 64 << 20;

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub retain: bool,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Record {
    fn body(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let mut b = Vec::with_capacity(11 + topic.len() + self.payload.len());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.push(u8::from(self.retain));
        b.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        b.extend_from_slice(topic);
        b.extend_from_slice(&self.payload);
        b
    }

    fn from_body(b: &[u8]) -> Option<Self> {
        let seq = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let retain = *b.get(8)? != 0;
        let tlen = u16::from_le_bytes(b.get(9..11)?.try_into().ok()?) as usize;
        let topic = String::from_utf8(b.get(11..11 + tlen)?.to_vec()).ok()?;
        let payload = b.get(11 + tlen..)?.to_vec();
        Some(Self {
            seq,
            retain,
            topic,
            payload,
        })
    }

    fn encoded_len(&self) -> usize {
        HEADER + 11 + self.topic.len() + self.payload.len()
    }
}

/// What opening found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Unacknowledged records to replay.
    pub pending: usize,
    /// Bytes cut off the end of the log (a torn write or corruption).
    pub cut_bytes: u64,
}

#[derive(Debug)]
pub struct Spool {
    /// The folder and its open log; `None` keeps the spool in memory.
    disk: Option<(PathBuf, File)>,
    /// Unacknowledged records, oldest first.
    pending: VecDeque<Record>,
    /// Acknowledged sequence numbers above the watermark.
    acked_above: BTreeSet<u64>,
    /// Everything at or below it is acknowledged.
    watermark: u64,
    next_seq: u64,
    pending_bytes: usize,
    max_bytes: usize,
    /// The watermark moved since it was last written.
    dirty: bool,
    /// Records dropped because the bound was reached.
    pub dropped: u64,
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let body = record.body();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, keeping at most `max_bytes`
    /// of unacknowledged records.
    pub fn open(dir: &Path, max_bytes: usize) -> io::Result<(Self, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let watermark = match std::fs::read(dir.join("acked")) {
            Ok(b) if b.len() == 8 => u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
            _ => 0,
        };
        let path = dir.join("spool.log");
        let mut data = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            f.read_to_end(&mut data)?;
        }
        let mut records = Vec::new();
        let mut good = 0usize;
        while let Some((record, len)) = parse(&data[good..]) {
            records.push(record);
            good += len;
        }
        let cut = (data.len() - good) as u64;
        let log = OpenOptions::new().create(true).append(true).open(&path)?;
        if cut > 0 {
            log.set_len(good as u64)?;
            log.sync_all()?;
        }
        let next_seq = records
            .iter()
            .map(|r| r.seq + 1)
            .max()
            .unwrap_or(1)
            .max(watermark + 1);
        let pending: VecDeque<Record> = records.into_iter().filter(|r| r.seq > watermark).collect();
        let pending_bytes = pending.iter().map(Record::encoded_len).sum();
        let recovery = Recovery {
            pending: pending.len(),
            cut_bytes: cut,
        };
        let mut spool = Self::in_memory(max_bytes);
        spool.disk = Some((dir.to_path_buf(), log));
        spool.pending = pending;
        spool.pending_bytes = pending_bytes;
        spool.watermark = watermark;
        spool.next_seq = next_seq;
        Ok((spool, recovery))
    }

    /// A spool that keeps its records in memory only.
    pub fn in_memory(max_bytes: usize) -> Self {
        Self {
            disk: None,
            pending: VecDeque::new(),
            acked_above: BTreeSet::new(),
            watermark: 0,
            next_seq: 1,
            pending_bytes: 0,
            max_bytes,
            dirty: false,
            dropped: 0,
        }
    }

    /// Appends one message and syncs it to disk; returns its sequence number.
    pub fn append(&mut self, topic: &str, payload: &[u8], retain: bool) -> io::Result<u64> {
        self.append_all([(topic.to_string(), payload.to_vec(), retain)])
    }

    /// Appends messages `(topic, payload, retain)` with one write and one
    /// sync for all of them; returns the last sequence number. When the bound
    /// is reached the oldest records are dropped (and counted).
    pub fn append_all(
        &mut self,
        messages: impl IntoIterator<Item = (String, Vec<u8>, bool)>,
    ) -> io::Result<u64> {
        let first = self.next_seq;
        let records: Vec<Record> = messages
            .into_iter()
            .enumerate()
            .map(|(i, (topic, payload, retain))| Record {
                seq: first + i as u64,
                retain,
                topic,
                payload,
            })
            .collect();
        let mut written = Ok(());
        if let Some((_, log)) = &mut self.disk {
            let mut buf = Vec::with_capacity(records.iter().map(Record::encoded_len).sum());
            for r in &records {
                encode(r, &mut buf);
            }
            let end = log.metadata()?.len();
            written = log.write_all(&buf).and_then(|()| log.sync_data());
            if written.is_err() {
                // No torn record may hide the ones appended after it.
                let _ = log.set_len(end);
            }
        }
        // Kept in memory even when the disk refused them: only a restart loses them then.
        self.next_seq += records.len() as u64;
        for record in records {
            self.pending_bytes += record.encoded_len();
            self.pending.push_back(record);
        }
        while self.pending_bytes > self.max_bytes && self.pending.len() > 1 {
            if let Some(old) = self.pending.pop_front() {
                self.pending_bytes -= old.encoded_len();
                self.acked_above.remove(&old.seq);
                self.dropped += 1;
                self.watermark = self.watermark.max(old.seq);
                self.dirty = true;
            }
        }
        written.map(|()| self.next_seq - 1)
    }

    /// Unacknowledged records, oldest first: what to (re)send.
    pub fn pending(&self) -> impl Iterator<Item = &Record> {
        self.pending_after(0)
    }

    /// Unacknowledged records with a sequence number above `seq`, oldest first.
    pub fn pending_after(&self, seq: u64) -> impl Iterator<Item = &Record> {
        let start = self.pending.partition_point(|r| r.seq <= seq);
        self.pending
            .range(start..)
            .filter(|r| !self.acked_above.contains(&r.seq))
    }

    /// Marks `seq` acknowledged (acks may come out of order).
    pub fn ack(&mut self, seq: u64) {
        if seq <= self.watermark {
            return;
        }
        self.acked_above.insert(seq);
        while let Some(front) = self.pending.front() {
            if !self.acked_above.remove(&front.seq) {
                break;
            }
            self.watermark = front.seq;
            self.dirty = true;
            self.pending_bytes -= front.encoded_len();
            self.pending.pop_front();
        }
    }

    /// Writes the acknowledgement watermark (atomically) when it moved, and
    /// rewrites the log without acknowledged records once they dominate it.
    pub fn persist(&mut self) -> io::Result<()> {
        let Some((dir, log)) = &self.disk else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let tmp = dir.join("acked.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&self.watermark.to_le_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join("acked"))?;
        self.dirty = false;
        let on_disk = log.metadata()?.len() as usize;
        if on_disk > 4 * self.pending_bytes.max(1 << 20) {
            self.compact()?;
        }
        Ok(())
    }

    fn compact(&mut self) -> io::Result<()> {
        let Some((dir, log)) = &mut self.disk else {
            return Ok(());
        };
        let tmp = dir.join("spool.log.tmp");
        let mut buf = Vec::with_capacity(self.pending_bytes);
        for r in &self.pending {
            encode(r, &mut buf);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join("spool.log"))?;
        *log = OpenOptions::new()
            .append(true)
            .open(dir.join("spool.log"))?;
        Ok(())
    }

    /// Unacknowledged records.
    pub fn len(&self) -> usize {
        self.pending.len() - self.acked_above.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One record at the start of `data`, and its encoded length.
fn parse(data: &[u8]) -> Option<(Record, usize)> {
    let magic = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
    let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    if magic != MAGIC || len > MAX_BODY {
        return None;
    }
    let body = data.get(HEADER..HEADER + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some((Record::from_body(body)?, HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(s: &Spool) -> Vec<String> {
        s.pending().map(|r| r.topic.clone()).collect()
    }

    #[test]
    fn appended_records_survive_a_restart_in_order_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec, Recovery::default());
        for i in 0..5 {
            s.append(&format!("t/{i}"), b"{}", i == 0).unwrap();
        }
        s.ack(2);
        s.ack(1);
        s.ack(4); // out of order: 3 still pending
        s.persist().unwrap();
        drop(s);
        let (s, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            rec.pending, 3,
            "4 was acked above an unacked 3: resent, at least once"
        );
        assert_eq!(topics(&s), vec!["t/2", "t/3", "t/4"]);
        assert_eq!(s.pending().next().unwrap().seq, 3);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_good_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..3 {
            s.append(&format!("t/{i}"), &[7; 100], false).unwrap();
        }
        drop(s);
        let path = dir.path().join("spool.log");
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 40).unwrap();
        let (mut s, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.pending, 2);
        assert!(rec.cut_bytes > 0);
        assert_eq!(topics(&s), vec!["t/0", "t/1"]);
        // Appending after the cut continues cleanly.
        assert_eq!(s.append("t/new", b"x", false).unwrap(), 3);
        drop(s);
        let (s, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((rec.pending, rec.cut_bytes), (3, 0));
        assert_eq!(topics(&s), vec!["t/0", "t/1", "t/new"]);
    }

    #[test]
    fn corruption_in_the_middle_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..4 {
            s.append(&format!("t/{i}"), &[1; 50], false).unwrap();
        }
        drop(s);
        let path = dir.path().join("spool.log");
        let mut data = std::fs::read(&path).unwrap();
        let one = data.len() / 4;
        data[one + one / 2] ^= 0xFF; // inside the second record
        std::fs::write(&path, &data).unwrap();
        let (s, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(topics(&s), vec!["t/0"]);
        assert_eq!(rec.cut_bytes as usize, data.len() - one);
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1000).unwrap();
        for i in 0..10 {
            s.append(&format!("t/{i}"), &[0; 200], false).unwrap();
        }
        assert!(s.dropped >= 6, "{}", s.dropped);
        let left = topics(&s);
        assert_eq!(left.last().map(String::as_str), Some("t/9"));
        assert_eq!(left.len() as u64 + s.dropped, 10);
        s.persist().unwrap();
        drop(s);
        // Dropped ones do not come back after a restart.
        let (s, _) = Spool::open(dir.path(), 1000).unwrap();
        assert_eq!(topics(&s), left);
    }

    #[test]
    fn garbage_instead_of_a_spool_is_recovered_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spool.log"), b"this is not a spool at all").unwrap();
        std::fs::write(dir.path().join("acked"), b"bad").unwrap();
        let (mut s, rec) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.pending, 0);
        assert_eq!(rec.cut_bytes, 26);
        assert_eq!(s.append("t", b"x", false).unwrap(), 1);
    }

    #[test]
    fn a_full_disk_is_an_error_but_the_message_is_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        let full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        s.disk = Some((dir.path().to_path_buf(), full));
        let err = s.append("t/0", b"x", false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(topics(&s), vec!["t/0"]);
        s.ack(1);
        assert!(s.is_empty());
    }
}
