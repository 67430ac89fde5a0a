//! What QoS 1 promises, kept apart from the network: the spool, the window
//! of spooled messages handed to the client, and the retained messages that
//! are announced again after every connect.
//!
//! The client gives a QoS 1 publish its packet id only when it writes it,
//! and reports that write in request order. So every QoS 1 publish is handed
//! over here, under one lock, and remembered in order until its id is known;
//! the broker's PUBACK for that id then acknowledges the spool record.

use std::collections::{HashMap, VecDeque};

use super::spool::{Pending, Record};

/// Hands a QoS 1 message to the client without blocking; false when it cannot
/// take it now.
pub trait Submit {
    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> bool;
}

/// Spooled messages handed to the client and not yet acknowledged, at most.
pub const WINDOW: usize = 64;

#[derive(Debug)]
pub struct Outbox {
    spool: Pending,
    connected: bool,
    /// QoS 1 publishes handed to the client whose packet id is not known
    /// yet, oldest first: the spool's sequence number, or `None` for others.
    awaiting_id: VecDeque<Option<u64>>,
    /// Packet id -> spool sequence number, written and not yet acknowledged.
    in_flight: HashMap<u16, u64>,
    /// Spooled messages handed over in this connection and not acknowledged.
    outstanding: usize,
    /// The highest sequence number handed over in this connection.
    sent_upto: u64,
    /// The latest retained message per topic, in first-set order.
    retained: Vec<(String, Vec<u8>)>,
}

impl Outbox {
    pub fn new(spool: Pending) -> Self {
        Self {
            spool,
            connected: false,
            awaiting_id: VecDeque::new(),
            in_flight: HashMap::new(),
            outstanding: 0,
            sent_upto: 0,
            retained: Vec::new(),
        }
    }

    /// A new session: the retained messages first, then the spool from its
    /// oldest unacknowledged record (the broker kept nothing of ours).
    pub fn connected(&mut self, c: &mut impl Submit) {
        self.reset();
        self.connected = true;
        for (topic, payload) in &self.retained {
            if c.publish(topic, payload, true) {
                self.awaiting_id.push_back(None);
            }
        }
        // Clearings go out once.
        self.retained.retain(|(_, p)| !p.is_empty());
        self.fill(c);
    }

    /// The connection is gone, and with it everything handed to the client.
    pub fn disconnected(&mut self) {
        self.reset();
    }

    fn reset(&mut self) {
        self.connected = false;
        self.awaiting_id.clear();
        self.in_flight.clear();
        self.outstanding = 0;
        self.sent_upto = 0;
    }

    /// Keeps `payload` as the topic's retained message and sends it when connected.
    pub fn retain(&mut self, topic: &str, payload: Vec<u8>, c: &mut impl Submit) {
        if self.connected && c.publish(topic, &payload, true) {
            self.awaiting_id.push_back(None);
        }
        match self.retained.iter_mut().find(|(t, _)| t == topic) {
            Some((_, p)) => *p = payload,
            None => self.retained.push((topic.to_string(), payload)),
        }
    }

    /// Queues spooled records (already on disk, or held in memory when the
    /// disk refused them), then sends what the window allows.
    pub fn append(&mut self, records: Vec<Record>, c: &mut impl Submit) {
        self.spool.push(records);
        self.fill(c);
    }

    /// Clears every retained topic under `prefix` (a stream that is gone).
    pub fn clear_under(&mut self, prefix: &str, c: &mut impl Submit) {
        let topics: Vec<String> = self
            .retained
            .iter()
            .filter(|(t, p)| t.starts_with(prefix) && !p.is_empty())
            .map(|(t, _)| t.clone())
            .collect();
        for t in topics {
            self.clear(&t, c);
        }
    }

    /// Clears a retained topic whose stream is gone: an empty retained
    /// message deletes the broker's copy, now or after the next connect,
    /// and then the topic is no longer announced.
    pub fn clear(&mut self, topic: &str, c: &mut impl Submit) {
        if self.connected && c.publish(topic, &[], true) {
            self.awaiting_id.push_back(None);
            self.retained.retain(|(t, _)| t != topic);
        } else {
            match self.retained.iter_mut().find(|(t, _)| t == topic) {
                Some((_, p)) => p.clear(),
                None => self.retained.push((topic.to_string(), Vec::new())),
            }
        }
    }

    /// Hands spooled messages to the client while the window has room.
    pub fn fill(&mut self, c: &mut impl Submit) {
        if !self.connected {
            return;
        }
        let room = WINDOW.saturating_sub(self.outstanding);
        for r in self.spool.after(self.sent_upto).take(room) {
            if !c.publish(&r.topic, &r.payload, r.retain) {
                break;
            }
            self.awaiting_id.push_back(Some(r.seq));
            self.sent_upto = r.seq;
            self.outstanding += 1;
        }
    }

    /// The client wrote the oldest awaiting QoS 1 publish with `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if pkid == 0 {
            return; // QoS 0: nothing to acknowledge
        }
        if let Some(Some(seq)) = self.awaiting_id.pop_front() {
            self.in_flight.insert(pkid, seq);
        }
    }

    /// The broker acknowledged `pkid`.
    pub fn acked(&mut self, pkid: u16, c: &mut impl Submit) {
        if let Some(seq) = self.in_flight.remove(&pkid) {
            self.spool.ack(seq);
            self.outstanding = self.outstanding.saturating_sub(1);
            self.fill(c);
        }
    }

    /// Everything at or below it is acknowledged (or dropped by the bound).
    pub fn watermark(&self) -> u64 {
        self.spool.watermark()
    }

    /// Spooled messages not yet acknowledged.
    pub fn spooled(&self) -> usize {
        self.spool.len()
    }

    /// Spooled messages dropped because the spool's bound was reached.
    pub fn dropped(&self) -> u64 {
        self.spool.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that assigns packet ids the way rumqttc does: in request order.
    #[derive(Default)]
    struct Fake {
        queue: Vec<(String, bool)>,
        full: bool,
    }

    impl Submit for Fake {
        fn publish(&mut self, topic: &str, _: &[u8], retain: bool) -> bool {
            if self.full {
                return false;
            }
            self.queue.push((topic.to_string(), retain));
            true
        }
    }

    fn msgs(range: std::ops::Range<u32>) -> Vec<Record> {
        range
            .map(|i| Record {
                seq: u64::from(i) + 1,
                retain: false,
                topic: format!("d/{i}"),
                payload: vec![b'{'],
            })
            .collect()
    }

    /// Writes everything queued (ids 1, 2, ...) and returns the topics in order.
    fn write_all(o: &mut Outbox, f: &mut Fake, next_id: &mut u16) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        for (topic, _) in f.queue.drain(..) {
            o.sent(*next_id);
            out.push((*next_id, topic));
            *next_id += 1;
        }
        out
    }

    #[test]
    fn spooled_messages_wait_for_a_connection_and_go_in_order() {
        let mut o = Outbox::new(Pending::new(1 << 20));
        let mut f = Fake::default();
        o.append(msgs(0..3), &mut f);
        assert!(f.queue.is_empty(), "nothing is sent while disconnected");
        o.retain("s/status", b"{}".to_vec(), &mut f);
        o.connected(&mut f);
        let topics: Vec<_> = f.queue.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["s/status", "d/0", "d/1", "d/2"]);
        let mut id = 1;
        let written = write_all(&mut o, &mut f, &mut id);
        for (pkid, _) in &written {
            o.acked(*pkid, &mut f);
        }
        assert_eq!(o.spooled(), 0);
    }

    #[test]
    fn a_lost_connection_resends_everything_unacknowledged_in_order() {
        let mut o = Outbox::new(Pending::new(1 << 20));
        let mut f = Fake::default();
        o.connected(&mut f);
        o.append(msgs(0..4), &mut f);
        let mut id = 1;
        let written = write_all(&mut o, &mut f, &mut id);
        // Only d/0 and d/2 are acknowledged before the broker goes away.
        o.acked(written[0].0, &mut f);
        o.acked(written[2].0, &mut f);
        o.disconnected();
        o.append(msgs(4..5), &mut f);
        assert!(f.queue.is_empty());
        o.connected(&mut f);
        let topics: Vec<_> = f.queue.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["d/1", "d/3", "d/4"]);
    }

    #[test]
    fn the_window_bounds_what_is_handed_over_and_acks_refill_it() {
        let mut o = Outbox::new(Pending::new(1 << 30));
        let mut f = Fake::default();
        o.connected(&mut f);
        o.append(msgs(0..(WINDOW as u32 + 10)), &mut f);
        assert_eq!(f.queue.len(), WINDOW);
        let mut id = 1;
        let written = write_all(&mut o, &mut f, &mut id);
        o.acked(written[5].0, &mut f); // out of order is fine
        assert_eq!(f.queue.len(), 1);
        assert_eq!(f.queue[0].0, format!("d/{WINDOW}"));
        assert_eq!(o.spooled(), WINDOW + 9);
    }

    #[test]
    fn a_full_client_queue_is_retried_later_not_skipped() {
        let mut o = Outbox::new(Pending::new(1 << 20));
        let mut f = Fake::default();
        o.connected(&mut f);
        f.full = true;
        o.append(msgs(0..2), &mut f);
        f.full = false;
        o.fill(&mut f);
        let topics: Vec<_> = f.queue.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(topics, ["d/0", "d/1"]);
    }

    #[test]
    fn retained_messages_keep_the_latest_and_ids_of_others_are_not_confused() {
        let mut o = Outbox::new(Pending::new(1 << 20));
        let mut f = Fake::default();
        o.retain("a", b"1".to_vec(), &mut f);
        o.retain("a", b"2".to_vec(), &mut f);
        o.retain("b", b"3".to_vec(), &mut f);
        o.connected(&mut f);
        o.append(msgs(0..1), &mut f);
        let mut id = 1;
        let written = write_all(&mut o, &mut f, &mut id);
        assert_eq!(written.len(), 3, "a, b, then the spooled message");
        // Acks for the retained ones do not touch the spool.
        o.acked(1, &mut f);
        o.acked(2, &mut f);
        assert_eq!(o.spooled(), 1);
        o.acked(3, &mut f);
        assert_eq!(o.spooled(), 0);
        assert_eq!(o.retained[0], ("a".to_string(), b"2".to_vec()));
    }

    #[test]
    fn a_cleared_topic_is_deleted_once_and_never_announced_again() {
        let mut o = Outbox::new(Pending::new(1 << 20));
        let mut f = Fake::default();
        o.retain("gone/status", b"{}".to_vec(), &mut f);
        o.retain("kept/status", b"{}".to_vec(), &mut f);
        // Cleared while disconnected: the empty message waits for the connect.
        o.clear("gone/status", &mut f);
        o.connected(&mut f);
        let sent: Vec<_> = f.queue.drain(..).map(|(t, _)| t).collect();
        assert_eq!(sent, ["gone/status", "kept/status"]);
        o.disconnected();
        o.connected(&mut f);
        let sent: Vec<_> = f.queue.drain(..).map(|(t, _)| t).collect();
        assert_eq!(
            sent,
            ["kept/status"],
            "a removed stream is not re-announced"
        );
        // Cleared while connected: sent at once, then forgotten.
        o.clear("kept/status", &mut f);
        assert_eq!(f.queue.len(), 1);
        o.disconnected();
        f.queue.clear();
        o.connected(&mut f);
        assert!(f.queue.is_empty());
    }
}
