//! The worker with a fake model: ordering, counting, and panics.

use std::sync::Mutex;

use super::*;
use crate::frame::FrameMeta;
use crate::inference::{Colour, DType, Filter, Layout, Outlet, ResizeMode};
use crate::stats::StreamStats;
use crate::status::StreamStatus;

/// Records how many results the stream had counted when each was
/// published, the frames' timestamps, and everything in order.
struct Seen(
    Arc<StreamStats>,
    Mutex<Vec<u64>>,
    Mutex<Vec<Option<u64>>>,
    Mutex<Vec<String>>,
);

impl Seen {
    fn new(stats: &Arc<StreamStats>) -> Self {
        Self(
            stats.clone(),
            Mutex::default(),
            Mutex::default(),
            Mutex::default(),
        )
    }
}

impl Outlet for Seen {
    fn analysis(&self, a: Analysis) {
        if let Ok(mut v) = self.1.lock() {
            v.push(self.0.frames_analysed.load(Ordering::Relaxed));
        }
        if let Ok(mut v) = self.2.lock() {
            v.push(a.meta.pts_ns);
        }
        if let Ok(mut v) = self.3.lock() {
            v.push(format!("frame {}", a.meta.pts_ns.unwrap_or_default()));
        }
    }
    fn status(&self, s: StreamStatus) {
        if let Ok(mut v) = self.3.lock() {
            v.push(format!("{:?}", s.state));
        }
    }
}

fn meta(pts: u64) -> FrameMeta {
    FrameMeta::test(pts)
}

fn analysis() -> Analysis {
    Analysis {
        meta: meta(0),
        model: "m".into(),
        output: Output::Detections(Vec::new()),
        inference_ms: 0.0,
    }
}

fn input(items: Receiver<Item>, stats: &Arc<StreamStats>, seen: &Arc<Seen>) -> Input {
    Input {
        stream: "s".into(),
        items,
        out: seen.clone(),
        filter: Filter {
            min_score: 0.0,
            labels: None,
            max_objects: None,
        },
        stats: stats.clone(),
        pictures: true,
    }
}

#[test]
fn a_result_is_counted_only_once_handed_to_the_publisher() {
    // A file stream says `stopped` once every frame is counted; its last
    // results must be on their way by then.
    let stats = Arc::new(StreamStats::default());
    let seen = Arc::new(Seen::new(&stats));
    let served = Served::new(input(crossbeam_channel::never(), &stats, &seen));
    served.order().in_flight.extend([0, 1]);
    served.finish(1, Done::Analysis(analysis()));
    served.finish(0, Done::Analysis(analysis()));
    assert_eq!(*seen.1.lock().unwrap(), vec![0, 1]);
    assert_eq!(stats.frames_analysed.load(Ordering::Relaxed), 2);
}

/// A model that panics on frames whose first byte is 0xFF.
struct Fragile {
    name: Arc<str>,
    input: InputSpec,
    batch: usize,
}

impl Fragile {
    fn new(batch: usize) -> Self {
        Self {
            name: "fragile".into(),
            input: InputSpec {
                name: "x".into(),
                width: 1,
                height: 1,
                layout: Layout::Nhwc,
                dtype: DType::U8,
                colour: Colour::Rgb,
                resize: ResizeMode::Stretch,
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            batch,
        }
    }
}

impl Runner for Fragile {
    fn name(&self) -> &Arc<str> {
        &self.name
    }
    fn max_batch(&self) -> usize {
        self.batch
    }
    fn input(&self) -> &InputSpec {
        &self.input
    }
    fn infer_batch(&mut self, images: &[&Image], _: &[f32]) -> Result<Vec<Output>, ModelError> {
        if images.iter().any(|i| i.bytes().first() == Some(&0xFF)) {
            panic!("index out of bounds in a decoder");
        }
        std::thread::sleep(Duration::from_millis(2));
        Ok(images
            .iter()
            .map(|_| Output::Detections(Vec::new()))
            .collect())
    }
}

fn frame(pts: u64, first_byte: u8) -> Frame {
    Frame {
        meta: meta(pts),
        image: Image::from_vec(1, 1, 4, vec![first_byte, 0, 0, 0]),
    }
}

/// Runs `frames` (pts, first byte) through `workers` workers of a Fragile
/// model; returns the published timestamps in order and the stream's stats.
fn run_fragile(frames: &[(u64, u8)], workers: usize) -> (Vec<Option<u64>>, Arc<StreamStats>) {
    let items = frames
        .iter()
        .map(|(pts, byte)| Item::Frame(frame(*pts, *byte)));
    let (seen, stats) = run_items(items.collect(), workers);
    let published = seen.2.lock().unwrap().clone();
    (published, stats)
}

/// Runs `items` through `workers` workers of a Fragile model.
fn run_items(items: Vec<Item>, workers: usize) -> (Arc<Seen>, Arc<StreamStats>) {
    let stats = Arc::new(StreamStats::default());
    let seen = Arc::new(Seen::new(&stats));
    let (tx, rx) = crossbeam_channel::bounded(items.len());
    let served = Arc::new(Served::new(input(rx, &stats, &seen)));
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (control, control_rx) = crossbeam_channel::unbounded();
            control.send(Control::Add(served.clone())).unwrap();
            std::thread::spawn(move || {
                // Dropping `control` now lets the worker end when the stream does.
                drop(control);
                work(Fragile::new(2), control_rx, &Heartbeat::new());
            })
        })
        .collect();
    for item in items {
        tx.send(item).unwrap();
    }
    drop(tx);
    for t in threads {
        assert!(t.join().is_ok(), "a worker died");
    }
    (seen, stats)
}

#[test]
fn statuses_are_released_behind_the_frames_before_them() {
    use crate::status::StreamState::{Playing, Stopped};
    let status = |s| Item::Status(StreamStatus::new(s, std::time::SystemTime::now()), None);
    let mut items = vec![status(Playing)];
    // Frame 5 panics: its place is kept all the same.
    items.extend((0..10).map(|pts| Item::Frame(frame(pts, if pts == 5 { 0xFF } else { 0 }))));
    items.push(status(Stopped));
    for workers in [1, 3] {
        let (seen, _) = run_items(items_again(&items), workers);
        let log = seen.3.lock().unwrap().clone();
        assert_eq!(log.first().map(String::as_str), Some("Playing"), "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("Stopped"), "{log:?}");
        assert!(log.contains(&"frame 9".to_string()), "{log:?}");
    }
}

/// The same items again (frames are not `Clone`: their pixels may be
/// GStreamer's).
fn items_again(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|i| match i {
            Item::Frame(f) => Item::Frame(Frame {
                meta: meta(f.meta.pts_ns.unwrap_or_default()),
                image: Image::from_vec(1, 1, 4, f.image.bytes().to_vec()),
            }),
            Item::Status(s, _) => Item::Status(s.clone(), None),
        })
        .collect()
}

#[test]
fn a_panicking_model_fails_its_frames_and_later_results_still_flow() {
    let frames: Vec<(u64, u8)> = (0..12)
        .map(|pts| (pts, if pts == 3 || pts == 7 { 0xFF } else { 0 }))
        .collect();
    for workers in [1, 3] {
        let (published, stats) = run_fragile(&frames, workers);
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        // A batch takes up to two frames: a panic fails its batch-mate too.
        let failed = load(&stats.frames_failed);
        assert!((2..=4).contains(&failed), "{failed} failed");
        assert_eq!(load(&stats.inference_panics), failed);
        assert_eq!(load(&stats.frames_analysed) + failed, 12);
        assert_eq!(published.len() as u64, 12 - failed);
        // In the source's order, and the frames after the panics are there.
        assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
        assert!(published.contains(&Some(11)), "{published:?}");
        assert!(!published.contains(&Some(3)) && !published.contains(&Some(7)));
        // Every analysed frame's run time is in the histogram.
        let (counts, sum) = stats.inference.read();
        assert_eq!(counts.last().copied(), Some(load(&stats.frames_analysed)));
        assert!(sum > 0.0, "{sum}");
    }
}

#[test]
fn an_abandoned_ticket_releases_the_results_behind_it() {
    let stats = Arc::new(StreamStats::default());
    let (tx, rx) = crossbeam_channel::unbounded();
    let seen = Arc::new(Seen::new(&stats));
    let served = Arc::new(Served::new(input(rx, &stats, &seen)));
    for pts in 0..3 {
        tx.send(Item::Frame(frame(pts, 0))).unwrap();
    }
    let take = || match served.take() {
        Take::Frame(t, f) => (t, f),
        _ => panic!("no frame"),
    };
    let (t0, _) = take();
    let (t1, f1) = take();
    let (t2, f2) = take();
    t1.finish(Some(Analysis {
        meta: f1.meta,
        ..analysis()
    }));
    t2.finish(Some(Analysis {
        meta: f2.meta,
        ..analysis()
    }));
    assert!(seen.2.lock().unwrap().is_empty(), "frame 0 is not done yet");
    // Frame 0's work panicked: its ticket is dropped unfinished.
    drop(t0);
    served.release_waiting();
    assert_eq!(*seen.2.lock().unwrap(), vec![Some(1), Some(2)]);
    assert_eq!(stats.frames_failed.load(Ordering::Relaxed), 1);
}
