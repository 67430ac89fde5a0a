//! The QoS 1 spool (`mqtt.spool`), in two halves so that the network never
//! waits on the disk:
//! - [`Pending`]: the unacknowledged messages in memory, oldest first,
//!   bounded (the oldest go first). The outbox sends from it under its lock.
//! - [`Spool`]: their copy on disk, written and synced only by the spooler
//!   thread, outside that lock. It persists the acknowledgement watermark
//!   and compacts the log on a timer, so with a healthy broker the file stays
//!   small however long the daemon runs, and a crash replays only the
//!   unacknowledged tail.
//!
//! Layout of the folder (0700, files 0600: the messages say who was seen when):
//! - `spool.log`: records, each `magic | body length | crc32(body) | body`
//!   with body `seq u64 | retain u8 | topic length u16 | topic | payload`
//!   (little-endian), sequence numbers increasing. Opening streams it record
//!   by record with the memory bound applied; a torn or corrupt tail is cut
//!   at the last good record.
//! - `acked`: the sequence number at or below which everything was
//!   acknowledged, replaced atomically (write, sync, rename, sync the folder).
//!
//! Without a folder the spool lives in memory only: same order and bound,
//! but a restart loses it.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const MAGIC: u32 = 0x5053_4456; // "VDSP"
const HEADER: usize = 12;
/// A record larger than this is corruption, not a message.
const MAX_BODY: usize = 64 << 20;
/// The log is rewritten once acknowledged records take at least this much
/// of it and at least half of it: small enough to stay invisible on a
/// small board's flash, large enough that rewrites are rare.
pub const COMPACT_MIN: u64 = 256 << 10;
const LOG: &str = "spool.log";
const ACKED: &str = "acked";

/// One spooled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub retain: bool,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Record {
    fn encode(&self, out: &mut Vec<u8>) {
        let topic = self.topic.as_bytes();
        // Topics are at most 65535 bytes in MQTT; a longer one is cut here
        // rather than written with a length that lies.
        let topic = &topic[..topic.len().min(u16::MAX as usize)];
        let body_len = 11 + topic.len() + self.payload.len();
        let start = out.len();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(u8::from(self.retain));
        out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        out.extend_from_slice(topic);
        out.extend_from_slice(&self.payload);
        let crc = crc32fast::hash(&out[start + HEADER..]);
        out[start + 8..start + HEADER].copy_from_slice(&crc.to_le_bytes());
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

    /// Bytes it takes in the log (and counts against the bound).
    pub fn encoded_len(&self) -> usize {
        HEADER + 11 + self.topic.len().min(u16::MAX as usize) + self.payload.len()
    }
}

/// What opening found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Unacknowledged records to replay.
    pub pending: usize,
    /// Bytes cut off the end of the log (a torn write or corruption).
    pub cut_bytes: u64,
    /// Unacknowledged records beyond the bound, dropped while opening.
    pub dropped: u64,
}

/// The unacknowledged messages, oldest first, within `max_bytes`.
#[derive(Debug)]
pub struct Pending {
    records: VecDeque<Record>,
    /// Acknowledged sequence numbers above the watermark.
    acked_above: BTreeSet<u64>,
    /// Everything at or below it is acknowledged (or dropped).
    watermark: u64,
    bytes: usize,
    max_bytes: usize,
    /// Records dropped because the bound was reached.
    pub dropped: u64,
}

impl Pending {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            records: VecDeque::new(),
            acked_above: BTreeSet::new(),
            watermark: 0,
            bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    /// Adds records (in sequence order); past the bound the oldest are
    /// dropped and counted, the newest always kept.
    pub fn push(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            if r.seq <= self.watermark || self.records.back().is_some_and(|b| b.seq >= r.seq) {
                continue; // out of order: never from the spooler, only from a damaged log
            }
            self.bytes += r.encoded_len();
            self.records.push_back(r);
        }
        while self.bytes > self.max_bytes && self.records.len() > 1 {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= old.encoded_len();
                if !self.acked_above.remove(&old.seq) {
                    self.dropped += 1;
                }
                self.watermark = self.watermark.max(old.seq);
            }
        }
    }

    /// Unacknowledged records with a sequence number above `seq`, oldest first.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Record> {
        let start = self.records.partition_point(|r| r.seq <= seq);
        self.records
            .range(start..)
            .filter(|r| !self.acked_above.contains(&r.seq))
    }

    /// Marks `seq` acknowledged (acks may come out of order).
    pub fn ack(&mut self, seq: u64) {
        let known = self.records.binary_search_by_key(&seq, |r| r.seq).is_ok();
        if seq <= self.watermark || !known {
            return;
        }
        self.acked_above.insert(seq);
        while let Some(front) = self.records.front() {
            if !self.acked_above.remove(&front.seq) {
                break;
            }
            self.watermark = front.seq;
            self.bytes -= front.encoded_len();
            self.records.pop_front();
        }
    }

    /// Everything at or below it is acknowledged or dropped.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Unacknowledged records.
    pub fn len(&self) -> usize {
        self.records.len() - self.acked_above.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The on-disk side: sequence numbers, the log and the watermark file.
#[derive(Debug)]
pub struct Spool {
    disk: Option<Disk>,
    next_seq: u64,
}

#[derive(Debug)]
struct Disk {
    dir: PathBuf,
    log: File,
    len: u64,
    /// (sequence number, offset) of every record in the log, oldest first.
    index: VecDeque<(u64, u64)>,
    /// The watermark last written to `acked`.
    saved: u64,
}

impl Spool {
    /// A spool kept in memory only.
    pub fn in_memory(max_bytes: usize) -> (Self, Pending) {
        (
            Self {
                disk: None,
                next_seq: 1,
            },
            Pending::new(max_bytes),
        )
    }

    /// Opens (or creates) the spool in `dir`; what it holds unacknowledged
    /// comes back in [`Pending`], at most `max_bytes` of it (the newest).
    pub fn open(dir: &Path, max_bytes: usize) -> io::Result<(Self, Pending, Recovery)> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let watermark = match std::fs::read(dir.join(ACKED)) {
            Ok(b) => b
                .get(..8)
                .filter(|_| b.len() == 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes),
            Err(_) => 0,
        };
        let path = dir.join(LOG);
        let log = private(OpenOptions::new().create(true).read(true).append(true)).open(&path)?;
        // Older versions made it 0644.
        log.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut pending = Pending::new(max_bytes);
        pending.watermark = watermark;
        let mut index = VecDeque::new();
        let mut good = 0u64;
        let mut last_seq = 0u64;
        let mut reader = BufReader::new(&log);
        reader.seek(SeekFrom::Start(0))?;
        while let Some((record, len)) = read_record(&mut reader)? {
            if record.seq <= last_seq {
                break; // not written by us in this order: damage
            }
            last_seq = record.seq;
            index.push_back((record.seq, good));
            good += len;
            if record.seq > watermark {
                pending.push([record]);
            }
        }
        let file_len = log.metadata()?.len();
        let cut = file_len - good.min(file_len);
        if cut > 0 {
            log.set_len(good)?;
            log.sync_all()?;
        }
        let recovery = Recovery {
            pending: pending.len(),
            cut_bytes: cut,
            dropped: pending.dropped,
        };
        pending.dropped = 0;
        let spool = Self {
            disk: Some(Disk {
                dir: dir.to_path_buf(),
                log,
                len: good,
                index,
                saved: watermark,
            }),
            next_seq: last_seq.max(watermark) + 1,
        };
        Ok((spool, pending, recovery))
    }

    /// Gives messages `(topic, payload, retain)` their sequence numbers.
    pub fn stamp(
        &mut self,
        messages: impl IntoIterator<Item = (String, Vec<u8>, bool)>,
    ) -> Vec<Record> {
        messages
            .into_iter()
            .map(|(topic, payload, retain)| {
                let seq = self.next_seq;
                self.next_seq += 1;
                Record {
                    seq,
                    retain,
                    topic,
                    payload,
                }
            })
            .collect()
    }

    /// Appends records with one write and one sync. A refused write is cut
    /// back, so no torn record hides the ones appended after it.
    pub fn write(&mut self, records: &[Record]) -> io::Result<()> {
        let Some(d) = &mut self.disk else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(records.iter().map(Record::encoded_len).sum());
        let mut offsets = Vec::with_capacity(records.len());
        for r in records {
            offsets.push((r.seq, d.len + buf.len() as u64));
            r.encode(&mut buf);
        }
        match d.log.write_all(&buf).and_then(|()| d.log.sync_data()) {
            Ok(()) => {
                d.len += buf.len() as u64;
                d.index.extend(offsets);
                Ok(())
            }
            Err(e) => {
                let _ = d.log.set_len(d.len);
                Err(e)
            }
        }
    }

    /// Writes the watermark when it moved, then rewrites the log without
    /// acknowledged records once they make up most of it. Returns whether
    /// it compacted.
    pub fn persist(&mut self, watermark: u64) -> io::Result<bool> {
        let Some(d) = &mut self.disk else {
            return Ok(false);
        };
        if watermark <= d.saved {
            return Ok(false);
        }
        replace(&d.dir, ACKED, &watermark.to_le_bytes())?;
        d.saved = watermark;
        while d.index.front().is_some_and(|(seq, _)| *seq <= watermark) {
            d.index.pop_front();
        }
        let live_from = d.index.front().map_or(d.len, |(_, off)| *off);
        if live_from < COMPACT_MIN || live_from < d.len - live_from {
            return Ok(false);
        }
        // The unacknowledged tail, copied as it is: written by us, already checked.
        let mut tail = Vec::with_capacity((d.len - live_from) as usize);
        let mut f = File::open(d.dir.join(LOG))?;
        f.seek(SeekFrom::Start(live_from))?;
        f.take(d.len - live_from).read_to_end(&mut tail)?;
        replace(&d.dir, LOG, &tail)?;
        d.log = private(OpenOptions::new().append(true).read(true)).open(d.dir.join(LOG))?;
        d.len = tail.len() as u64;
        for (_, off) in &mut d.index {
            *off -= live_from;
        }
        Ok(true)
    }

    /// Bytes in the log file (0 in memory).
    #[cfg(test)]
    pub fn log_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.len)
    }
}

fn private(o: &mut OpenOptions) -> &mut OpenOptions {
    o.mode(0o600)
}

/// Replaces `dir/name` atomically and durably: the rename and the folder
/// entry are synced, so a crash leaves the old file or the new one.
fn replace(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f =
            private(OpenOptions::new().create(true).write(true).truncate(true)).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// The next record and its encoded length; `None` at the end or at damage.
fn read_record(r: &mut impl Read) -> io::Result<Option<(Record, u64)>> {
    let mut header = [0u8; HEADER];
    if !read_full(r, &mut header)? {
        return Ok(None);
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (magic, len, crc) = (word(0), word(4) as usize, word(8));
    if magic != MAGIC || len > MAX_BODY {
        return Ok(None);
    }
    // Grown as read: a corrupt length does not allocate what the file lacks.
    let mut body = Vec::new();
    r.by_ref().take(len as u64).read_to_end(&mut body)?;
    if body.len() != len || crc32fast::hash(&body) != crc {
        return Ok(None);
    }
    Ok(Record::from_body(&body).map(|rec| (rec, (HEADER + len) as u64)))
}

/// Fills `buf`; false when the input ends first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
