//! A stream's way into inference: one channel with room for one item that
//! carries the stream's frames and, in band behind them, its status
//! changes. Inference releases both in this order, so a file's last results
//! go out before its `stopped`, and no stage has to poll another's counters
//! to find out.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError, select};
use tracing::warn;

use super::StreamStats;
use crate::frame::{Frame, Item};
use crate::status::{StreamState, StreamStatus};
use crate::sync::locked;

/// How long a status waits for room: only a model stuck on one frame for
/// this long keeps it waiting (the watchdog reports that).
const STATUS_WAIT: Duration = Duration::from_secs(5);

/// The sending end, shared by the stream's two senders: GStreamer's
/// streaming thread (frames) and the stream's supervisor (statuses).
pub struct Inlet {
    tx: Sender<Item>,
    /// The channel's other end: a live source takes a waiting frame back
    /// so that the newest wins.
    back: Receiver<Item>,
    /// Held while sending: taking an item back and putting a status back
    /// are one step for both senders, so nothing overtakes a status.
    sending: Mutex<()>,
    stats: Arc<StreamStats>,
}

impl Inlet {
    /// An inlet and the receiver inference takes the stream's items from.
    pub fn new(stats: Arc<StreamStats>) -> (Self, Receiver<Item>) {
        // One item in flight: a live source replaces a waiting frame when
        // the model is busy, a file waits. Putting a status back in its
        // place relies on the channel holding one item.
        let (tx, rx) = crossbeam_channel::bounded(1);
        let inlet = Self {
            tx,
            back: rx.clone(),
            sending: Mutex::new(()),
            stats,
        };
        (inlet, rx)
    }

    /// A frame of a live source: replaces a frame still waiting (the model
    /// is busy and that one is stale), never waits. False once inference
    /// is gone.
    pub fn live(&self, frame: Frame) -> bool {
        let _sending = match self.sending.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            // A status waits for room: this frame would wait behind it.
            Err(TryLockError::WouldBlock) => {
                self.stats.frames_dropped.fetch_add(1, Relaxed);
                return true;
            }
        };
        if self.switched_off() {
            return true;
        }
        // A frame the model need not look at never displaces one it must:
        // the gate has counted that one's check (the periodic whole frame,
        // a still object's) as done.
        let idle = frame.meta.sight.look == crate::frame::Look::Nothing;
        let frame = match self.tx.try_send(Item::Frame(frame)) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(_)) if idle => {
                self.stats.frames_dropped.fetch_add(1, Relaxed);
                return true;
            }
            Err(TrySendError::Full(item)) => item,
        };
        match self.back.try_recv() {
            Ok(Item::Frame(_)) => {}
            // A status keeps its place; the new frame is the one dropped.
            Ok(status @ Item::Status(..)) => {
                self.stats.frames_dropped.fetch_add(1, Relaxed);
                return self.tx.try_send(status).is_ok();
            }
            // The model took it meanwhile.
            Err(_) => {
                let _ = self.tx.try_send(frame);
                return true;
            }
        }
        self.stats.frames_dropped.fetch_add(1, Relaxed);
        if self.tx.try_send(frame).is_err() {
            self.stats.frames_dropped.fetch_add(1, Relaxed);
        }
        true
    }

    /// A frame of a file: waits for room (every frame of a file is
    /// analysed), or until `stop` closes. False once it should stop.
    pub fn wait(&self, frame: Frame, stop: &Receiver<()>) -> bool {
        let _sending = locked(&self.sending);
        if self.switched_off() {
            return true;
        }
        select! {
            send(self.tx, Item::Frame(frame)) -> r => r.is_ok(),
            recv(stop) -> _ => false,
        }
    }

    /// A status, behind every frame sent before it. Waits for room: a
    /// status is never dropped for a frame. A stream's last status
    /// (`stopped`, `failed`) also waits until it is published, so that a
    /// stream has said everything once it has stopped: a stream started
    /// again or removed right after cannot be overtaken by it.
    pub fn status(&self, status: StreamStatus) {
        let state = status.state;
        let last = matches!(state, StreamState::Stopped | StreamState::Failed);
        let (published, heard) = match last {
            true => {
                let (tx, rx) = crossbeam_channel::bounded::<()>(0);
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        {
            let _sending = locked(&self.sending);
            match self
                .tx
                .send_timeout(Item::Status(status, published), STATUS_WAIT)
            {
                Ok(()) | Err(SendTimeoutError::Disconnected(_)) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    warn!(
                        ?state,
                        "status not published: the model took no frame for 5 s"
                    );
                }
            }
        }
        // The sender goes when the status is published (or dropped unsent).
        if let Some(heard) = heard {
            let _ = heard.recv_timeout(STATUS_WAIT);
        }
    }

    /// The detect switch went off after the fps gate let this frame
    /// through: a `paused` may be on its way already, and nothing is
    /// analysed after it. Counted as the gate counts a paused frame.
    fn switched_off(&self) -> bool {
        let off = self.stats.paused.load(Relaxed);
        if off {
            self.stats.frames_kept.fetch_sub(1, Relaxed);
            self.stats.frames_skipped.fetch_add(1, Relaxed);
        }
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMeta, Image};

    fn frame(pts: u64) -> Frame {
        Frame {
            meta: FrameMeta::test(pts),
            image: Image::from_vec(1, 1, 3, vec![0; 3]),
        }
    }

    fn what(item: Item) -> String {
        match item {
            Item::Frame(f) => format!("frame {}", f.meta.pts_ns.unwrap_or_default()),
            Item::Status(s, _) => format!("{:?}", s.state),
        }
    }

    #[test]
    fn the_newest_live_frame_wins_but_never_over_a_status() {
        let stats = Arc::new(StreamStats::default());
        let (inlet, rx) = Inlet::new(stats.clone());
        assert!(inlet.live(frame(1)));
        assert!(inlet.live(frame(2)));
        assert_eq!(stats.frames_dropped.load(Relaxed), 1);
        assert_eq!(what(rx.try_recv().unwrap()), "frame 2");
        inlet.status(StreamStatus::new(
            StreamState::Playing,
            std::time::SystemTime::now(),
        ));
        // A status waiting: the new frame is dropped, the status stays.
        assert!(inlet.live(frame(3)));
        assert_eq!(stats.frames_dropped.load(Relaxed), 2);
        assert_eq!(what(rx.try_recv().unwrap()), "Playing");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_status_follows_the_frames_sent_before_it() {
        let stats = Arc::new(StreamStats::default());
        let (inlet, rx) = Inlet::new(stats.clone());
        let inlet = Arc::new(inlet);
        let (_stop_tx, stop) = crossbeam_channel::bounded::<()>(0);
        let sender = {
            let inlet = inlet.clone();
            std::thread::spawn(move || {
                for pts in 0..5 {
                    assert!(inlet.wait(frame(pts), &stop));
                }
                inlet.status(StreamStatus::new(
                    StreamState::Stopped,
                    std::time::SystemTime::now(),
                ));
            })
        };
        let seen: Vec<String> = (0..6).map(|_| what(rx.recv().unwrap())).collect();
        sender.join().unwrap();
        assert_eq!(
            seen,
            [
                "frame 0", "frame 1", "frame 2", "frame 3", "frame 4", "Stopped"
            ]
        );
        assert_eq!(stats.frames_dropped.load(Relaxed), 0);
    }

    #[test]
    fn no_frame_passes_once_the_detect_switch_is_off() {
        let stats = Arc::new(StreamStats::default());
        let (inlet, rx) = Inlet::new(stats.clone());
        stats.frames_kept.fetch_add(1, Relaxed);
        stats.paused.store(true, Relaxed);
        assert!(inlet.live(frame(1)));
        assert!(rx.try_recv().is_err());
        assert_eq!(stats.frames_skipped.load(Relaxed), 1);
        assert_eq!(stats.frames_kept.load(Relaxed), 0);
    }
}
