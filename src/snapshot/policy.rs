//! When a snapshot goes out: at an object's `new`, and when a clearly
//! better view of it comes (a higher score, larger, off the frame's edge);
//! at most one per label per interval; never while the object stands still.
//!
//! Pure and generic over the frame it holds, so it is tested in simulated
//! time. Times are the frames' `captured_at`: the capture time for live
//! sources and the decode time for files, both wall clock. The interval
//! protects the broker, Home Assistant and whoever looks at the pictures,
//! all of which live in wall time; a file replayed faster than real time
//! would otherwise send a burst, and a source's pts restart with each
//! reconnection.
//!
//! A view that comes too soon waits (one per label): it goes out when the
//! interval is over if its object is still there and moving, so the best
//! view of the interval is the one sent, not the first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::frame::BBox;

/// At most one snapshot per label per stream in this time (PRODUCT.md).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// A box closer than this to the frame's edge (normalised) is cut off.
const EDGE: f32 = 0.01;

/// One detection of an object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub score: f32,
    pub bbox: BBox,
}

impl View {
    pub fn on_edge(&self) -> bool {
        let b = self.bbox;
        b.x < EDGE || b.y < EDGE || b.x + b.w > 1.0 - EDGE || b.y + b.h > 1.0 - EDGE
    }

    fn area(&self) -> f32 {
        (self.bbox.w.max(0.0) * self.bbox.h.max(0.0)).min(1.0)
    }

    /// Clearly better, not merely different: leaving the frame's edge,
    /// 0.1 more score at about the same size, or half as large again at
    /// about the same score. Anything else would resend near-copies.
    pub fn clearly_better(&self, than: &View) -> bool {
        match (self.on_edge(), than.on_edge()) {
            (true, false) => return false,
            (false, true) => return self.score >= than.score - 0.05,
            _ => {}
        }
        let (a, b) = (self.area(), than.area());
        (self.score >= than.score + 0.1 && a >= b * 0.8)
            || (a >= b * 1.5 && self.score >= than.score - 0.05)
    }
}

/// A snapshot to send: of object `id`, as seen in `frame`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot<F> {
    pub id: Arc<str>,
    pub label: Arc<str>,
    pub view: View,
    pub frame: F,
    /// At the object's `new` (news beat a better view of an older object).
    pub first: bool,
}

#[derive(Debug)]
struct Object {
    label: Arc<str>,
    stationary: bool,
    /// The view last sent.
    sent: Option<View>,
}

#[derive(Debug)]
struct Label<F> {
    last: Option<SystemTime>,
    waiting: Option<Shot<F>>,
}

#[derive(Debug)]
pub struct Policy<F> {
    interval: Duration,
    objects: HashMap<Arc<str>, Object>,
    labels: HashMap<Arc<str>, Label<F>>,
}

impl<F> Policy<F> {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            objects: HashMap::new(),
            labels: HashMap::new(),
        }
    }

    /// An object was confirmed (its `new` event).
    pub fn confirmed(
        &mut self,
        id: &Arc<str>,
        label: &Arc<str>,
        view: View,
        stationary: bool,
        frame: F,
        at: SystemTime,
    ) -> Option<Shot<F>> {
        self.objects.insert(
            id.clone(),
            Object {
                label: label.clone(),
                stationary,
                sent: None,
            },
        );
        if stationary {
            return None;
        }
        let shot = Shot {
            id: id.clone(),
            label: label.clone(),
            view,
            frame,
            first: true,
        };
        self.offer(shot, at)
    }

    /// A later detection of an open object.
    pub fn seen(&mut self, id: &Arc<str>, view: View, frame: F, at: SystemTime) -> Option<Shot<F>> {
        let o = self.objects.get(id)?;
        if o.stationary || o.sent.is_some_and(|s| !view.clearly_better(&s)) {
            return None;
        }
        let shot = Shot {
            id: id.clone(),
            label: o.label.clone(),
            view,
            frame,
            // Never sent (it stood still at `new`, or its `new` lost its
            // slot): its first view counts as news.
            first: o.sent.is_none(),
        };
        self.offer(shot, at)
    }

    /// The object stands still (or moves again): a waiting view of it goes.
    pub fn stationary(&mut self, id: &str, still: bool) {
        if let Some(o) = self.objects.get_mut(id) {
            o.stationary = still;
            if still {
                self.drop_waiting(id);
            }
        }
    }

    /// The object ended: what waits for it goes.
    pub fn ended(&mut self, id: &str) {
        self.drop_waiting(id);
        self.objects.remove(id);
    }

    /// Every object ended (the stream stopped).
    pub fn clear(&mut self) {
        self.objects.clear();
        self.labels.clear();
    }

    fn drop_waiting(&mut self, id: &str) {
        if let Some(label) = self.objects.get(id).map(|o| o.label.clone())
            && let Some(l) = self.labels.get_mut(&label)
            && l.waiting.as_ref().is_some_and(|w| &*w.id == id)
        {
            l.waiting = None;
        }
    }

    /// The waiting views whose label's interval is over at `at`.
    pub fn due(&mut self, at: SystemTime) -> Vec<Shot<F>> {
        let interval = self.interval;
        let mut out = Vec::new();
        for l in self.labels.values_mut() {
            if l.waiting.is_some()
                && open(l.last, at, interval)
                && let Some(w) = l.waiting.take()
            {
                l.last = Some(at);
                out.push(w);
            }
        }
        for s in &out {
            if let Some(o) = self.objects.get_mut(&s.id) {
                o.sent = Some(s.view);
            }
        }
        out
    }

    /// Sends `shot` now if its label's interval allows, else keeps it
    /// waiting if it beats what waits.
    fn offer(&mut self, shot: Shot<F>, at: SystemTime) -> Option<Shot<F>> {
        let interval = self.interval;
        let l = self.labels.entry(shot.label.clone()).or_insert(Label {
            last: None,
            waiting: None,
        });
        if open(l.last, at, interval) {
            l.last = Some(at);
            // A sent view supersedes whatever waited for this label's slot
            // from the same object.
            if l.waiting.as_ref().is_some_and(|w| w.id == shot.id) {
                l.waiting = None;
            }
            if let Some(o) = self.objects.get_mut(&shot.id) {
                o.sent = Some(shot.view);
            }
            return Some(shot);
        }
        let replace = match &l.waiting {
            None => true,
            Some(w) if w.id == shot.id => shot.view.clearly_better(&w.view) || shot.first,
            Some(w) => shot.first || !w.first,
        };
        if replace {
            let first = shot.first
                || l.waiting
                    .as_ref()
                    .is_some_and(|w| w.id == shot.id && w.first);
            l.waiting = Some(Shot { first, ..shot });
        }
        None
    }

    /// Views held, waiting (each holds a frame).
    pub fn waiting(&self) -> usize {
        self.labels.values().filter(|l| l.waiting.is_some()).count()
    }
}

/// Whether a label last sent at `last` may send again at `at`. A clock
/// that went back counts as over: a stepped clock must not mute snapshots.
fn open(last: Option<SystemTime>, at: SystemTime, interval: Duration) -> bool {
    last.is_none_or(|t| at.duration_since(t).map_or(true, |d| d >= interval))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
