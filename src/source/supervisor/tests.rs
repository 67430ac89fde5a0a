//! The supervisor's tests, in simulated time.

mod supervise {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::super::*;

    /// Time that passes only when the supervisor waits.
    struct SimClock {
        now: Mutex<Instant>,
        sleeps: Mutex<Vec<Duration>>,
    }

    impl SimClock {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                now: Mutex::new(Instant::now()),
                sleeps: Mutex::default(),
            })
        }
        fn advance(&self, d: Duration) {
            *self.now.lock().unwrap() += d;
        }
    }

    impl Clock for Arc<SimClock> {
        fn wall(&self) -> std::time::SystemTime {
            // A fixed date: these tests time intervals, not dates.
            std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        }

        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration, stop: &Receiver<()>) -> bool {
            if stop.try_recv().is_err_and(|e| e.is_disconnected()) {
                return true;
            }
            self.sleeps.lock().unwrap().push(d);
            self.advance(d);
            false
        }
    }

    /// What one scripted session does.
    enum Script {
        /// Opening fails.
        Refused,
        /// Produces frames for a while, then ends this way (None: goes silent).
        Runs(Duration, Option<BusEvent>),
        /// Accepts the connection and never sends a frame.
        Silent,
    }

    struct FakeSession {
        clock: Arc<SimClock>,
        stats: Arc<StreamStats>,
        until: Instant,
        end: Option<BusEvent>,
    }

    impl Session for FakeSession {
        fn poll(&mut self, timeout: Duration) -> Option<BusEvent> {
            self.clock.advance(timeout);
            if self.clock.now() < self.until {
                self.stats.frames_in.fetch_add(3, Ordering::Relaxed);
                None
            } else {
                self.end.take()
            }
        }
        fn is_live(&self) -> bool {
            true
        }
    }

    struct FakeOpener {
        clock: Arc<SimClock>,
        stats: Arc<StreamStats>,
        script: Mutex<VecDeque<Script>>,
        /// Closed when the script runs out, which ends the test.
        stop: Mutex<Option<Sender<()>>>,
    }

    impl Opener for FakeOpener {
        fn open(&self, _session: Arc<str>) -> Result<Box<dyn Session>, String> {
            match self.script.lock().unwrap().pop_front() {
                None => {
                    self.stop.lock().unwrap().take();
                    Err("script over".into())
                }
                Some(Script::Refused) => Err("connection refused".into()),
                Some(Script::Runs(d, end)) => Ok(Box::new(FakeSession {
                    clock: self.clock.clone(),
                    stats: self.stats.clone(),
                    until: self.clock.now() + d,
                    end,
                })),
                Some(Script::Silent) => Ok(Box::new(FakeSession {
                    clock: self.clock.clone(),
                    stats: self.stats.clone(),
                    until: self.clock.now(),
                    end: None,
                })),
            }
        }
    }

    /// Records each status with the simulated time it was published at.
    struct Statuses {
        clock: Arc<SimClock>,
        start: Instant,
        seen: Mutex<Vec<(StreamState, Option<String>)>>,
        at: Mutex<Vec<Duration>>,
    }

    impl Report for Statuses {
        fn status(&self, s: StreamStatus) {
            self.seen.lock().unwrap().push((s.state, s.error.clone()));
            let t = self.clock.now() - self.start;
            self.at.lock().unwrap().push(t);
        }
    }

    /// Runs `script` through the supervisor; returns the sleeps and statuses.
    fn run(kind: Kind, script: Vec<Script>) -> (Vec<Duration>, Vec<(StreamState, Option<String>)>) {
        let (sleeps, statuses, _) = run_timed(kind, script);
        (sleeps, statuses)
    }

    type Timed = (
        Vec<Duration>,
        Vec<(StreamState, Option<String>)>,
        Vec<Duration>,
    );

    fn run_timed(kind: Kind, script: Vec<Script>) -> Timed {
        let clock = SimClock::new();
        let stats = Arc::new(StreamStats::default());
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let opener = FakeOpener {
            clock: clock.clone(),
            stats: stats.clone(),
            script: Mutex::new(script.into()),
            stop: Mutex::new(Some(stop_tx)),
        };
        let statuses = Statuses {
            clock: clock.clone(),
            start: clock.now(),
            seen: Mutex::default(),
            at: Mutex::default(),
        };
        supervise(
            kind,
            &stats,
            &opener,
            &clock,
            &stop_rx,
            &statuses,
            &Policy::default(),
        );
        let sleeps = clock.sleeps.lock().unwrap().clone();
        (
            sleeps,
            statuses.seen.into_inner().unwrap(),
            statuses.at.into_inner().unwrap(),
        )
    }

    /// Plays for 8 s; the detect switch goes off at 2 s and on at 5 s.
    struct Switched(FakeSession, Instant);

    impl Session for Switched {
        fn poll(&mut self, timeout: Duration) -> Option<BusEvent> {
            let t = self.0.clock.now() - self.1;
            let off = t >= Duration::from_secs(2) && t < Duration::from_secs(5);
            self.0.stats.paused.store(off, Ordering::Relaxed);
            self.0.poll(timeout)
        }
        fn is_live(&self) -> bool {
            true
        }
    }

    struct SwitchedOpener(Arc<SimClock>, Arc<StreamStats>);

    impl Opener for SwitchedOpener {
        fn open(&self, _session: Arc<str>) -> Result<Box<dyn Session>, String> {
            let now = self.0.now();
            Ok(Box::new(Switched(
                FakeSession {
                    clock: self.0.clone(),
                    stats: self.1.clone(),
                    until: now + Duration::from_secs(8),
                    end: Some(BusEvent::Eos),
                },
                now,
            )))
        }
    }

    #[test]
    fn the_detect_switch_pauses_and_resumes_a_playing_stream() {
        let clock = SimClock::new();
        let stats = Arc::new(StreamStats::default());
        // A file: its end ends the test.
        let (_stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let opener = SwitchedOpener(clock.clone(), stats.clone());
        let statuses = Statuses {
            clock: clock.clone(),
            start: clock.now(),
            seen: Mutex::default(),
            at: Mutex::default(),
        };
        supervise(
            Kind::File { looping: false },
            &stats,
            &opener,
            &clock,
            &stop_rx,
            &statuses,
            &Policy::default(),
        );
        let seen: Vec<StreamState> = statuses.seen.lock().unwrap().iter().map(|s| s.0).collect();
        let at = statuses.at.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                StreamState::Starting,
                StreamState::Playing,
                StreamState::Paused,
                StreamState::Playing,
                StreamState::Stopped
            ]
        );
        // Within one poll of the switch.
        assert!(
            at[2] >= Duration::from_secs(2) && at[2] < Duration::from_millis(2300),
            "{at:?}"
        );
        assert!(
            at[3] >= Duration::from_secs(5) && at[3] < Duration::from_millis(5300),
            "{at:?}"
        );
        // Paused frames still count as coming in: a paused live source is not stalled.
        assert!(stats.frames_in.load(Ordering::Relaxed) > 0);
    }

    fn within(d: Duration, base: u64) -> bool {
        d >= Duration::from_millis(base * 500) && d <= Duration::from_secs(base)
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let (sleeps, statuses) = run(Kind::Live, (0..8).map(|_| Script::Refused).collect());
        let bases = [1, 2, 4, 8, 16, 30, 30, 30];
        assert_eq!(sleeps.len(), bases.len());
        for (d, base) in sleeps.iter().zip(bases) {
            assert!(within(*d, base), "{d:?} outside [{base}/2, {base}] s");
        }
        let reconnecting = statuses
            .iter()
            .filter(|s| s.0 == StreamState::Reconnecting)
            .count();
        // One incident (eight refusals), then the end of the script.
        assert_eq!(reconnecting, 2);
        assert_eq!(
            statuses[1],
            (StreamState::Reconnecting, Some("connection refused".into()))
        );
        assert_eq!(statuses.last().unwrap().0, StreamState::Stopped);
    }

    #[test]
    fn backoff_starts_again_after_a_good_run() {
        let (sleeps, _) = run(
            Kind::Live,
            vec![
                Script::Refused,
                Script::Refused,
                Script::Refused,
                Script::Runs(
                    Duration::from_secs(60),
                    Some(BusEvent::Error("gone".into())),
                ),
                Script::Refused,
            ],
        );
        assert!(within(sleeps[2], 4), "{sleeps:?}");
        assert!(
            within(sleeps[3], 1),
            "reset after 60 s of frames: {sleeps:?}"
        );
        assert!(within(sleeps[4], 2), "{sleeps:?}");
    }

    #[test]
    fn a_camera_that_never_sends_a_frame_backs_off_and_logs_once() {
        // Each session lasts past `good_run` (it stalls after 10 s), but
        // without a frame it never played: no reset, no new incident.
        let (sleeps, statuses) = run(Kind::Live, (0..8).map(|_| Script::Silent).collect());
        let bases = [1, 2, 4, 8, 16, 30, 30, 30];
        assert_eq!(sleeps.len(), bases.len(), "{sleeps:?}");
        for (d, base) in sleeps.iter().zip(bases) {
            assert!(
                within(*d, base),
                "{d:?} outside [{base}/2, {base}] s: {sleeps:?}"
            );
        }
        let reconnecting: Vec<_> = statuses
            .iter()
            .filter(|s| s.0 == StreamState::Reconnecting)
            .collect();
        // One for the silent camera, one for the end of the script.
        assert_eq!(reconnecting.len(), 2, "{statuses:?}");
        assert_eq!(
            reconnecting[0].1.as_deref(),
            Some("no frame for 10 s; restarting the source")
        );
        assert!(statuses.iter().all(|s| s.0 != StreamState::Playing));
    }

    #[test]
    fn a_short_burst_of_frames_then_silence_is_not_a_good_run() {
        // Frames for 2 s, then a 10 s stall: 12 s of session, 2 s of play.
        let (sleeps, _) = run(
            Kind::Live,
            vec![
                Script::Refused,
                Script::Refused,
                Script::Runs(Duration::from_secs(2), None),
                Script::Refused,
            ],
        );
        assert!(
            within(sleeps[2], 4),
            "no reset after 2 s of frames: {sleeps:?}"
        );
        assert!(within(sleeps[3], 8), "{sleeps:?}");
    }

    #[test]
    fn a_silent_live_source_is_restarted_after_the_stall_time() {
        let (sleeps, statuses, at) =
            run_timed(Kind::Live, vec![Script::Runs(Duration::from_secs(5), None)]);
        let lost = statuses
            .iter()
            .position(|s| s.0 == StreamState::Reconnecting)
            .expect("reconnecting");
        // Frames stopped at 5 s; the stall is noticed 10 s later, to the poll.
        assert!(
            at[lost] >= Duration::from_millis(14_800) && at[lost] <= Duration::from_millis(15_200),
            "{:?}",
            at[lost]
        );
        let mut statuses = statuses;
        // The periodic rate updates repeat `playing`.
        statuses.dedup_by(|a, b| a.0 == b.0);
        let states: Vec<StreamState> = statuses.iter().map(|s| s.0).collect();
        assert_eq!(
            &states[..3],
            &[
                StreamState::Starting,
                StreamState::Playing,
                StreamState::Reconnecting
            ]
        );
        assert_eq!(
            statuses[2].1.as_deref(),
            Some("no frame for 10 s; restarting the source")
        );
        assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    }

    #[test]
    fn a_file_ends_stopped_and_a_broken_file_fails_without_retrying() {
        let (sleeps, statuses) = run(
            Kind::File { looping: false },
            vec![Script::Runs(Duration::from_secs(2), Some(BusEvent::Eos))],
        );
        assert!(sleeps.is_empty());
        assert_eq!(statuses.last().unwrap().0, StreamState::Stopped);

        let (sleeps, statuses) = run(Kind::File { looping: false }, vec![Script::Refused]);
        assert!(sleeps.is_empty());
        assert_eq!(
            statuses.last().unwrap(),
            &(StreamState::Failed, Some("connection refused".into()))
        );
    }

    #[test]
    fn a_looping_file_starts_again_at_once() {
        let (sleeps, statuses) = run(
            Kind::File { looping: true },
            vec![
                Script::Runs(Duration::from_secs(1), Some(BusEvent::Eos)),
                Script::Runs(Duration::from_secs(1), Some(BusEvent::Eos)),
            ],
        );
        let starts = statuses
            .iter()
            .filter(|s| s.0 == StreamState::Starting)
            .count();
        assert_eq!(starts, 3);
        // Only the end of the script (a refused open) waits.
        assert_eq!(sleeps.len(), 0);
    }
}

mod delivery {
    use std::time::SystemTime;

    use super::super::*;
    use crate::frame::{Image, Item};
    use crate::source::SourceSpec;

    fn pts(item: Item) -> Option<u64> {
        match item {
            Item::Frame(f) => f.meta.pts_ns,
            Item::Status(..) => None,
        }
    }

    fn setup(spec: &str) -> StreamSetup {
        StreamSetup {
            name: "s".into(),
            settings: PipelineSettings {
                spec: SourceSpec::parse(spec).unwrap(),
                width: 2,
                height: 2,
                fps: None,
                fps_phase: 0.0,
                realtime: false,
                resize: crate::inference::ResizeMode::Stretch,
                options: Default::default(),
                keep_full: false,
                motion: None,
            },
            stats: Arc::default(),
            feedback: Arc::default(),
            clock: Arc::new(crate::clock::SystemClock),
            looping: false,
        }
    }

    fn raw(pts: u64, live: bool) -> RawFrame {
        RawFrame {
            image: Image::from_vec(2, 2, 8, vec![0; 16]),
            pts_ns: Some(pts),
            captured_at: SystemTime::now(),
            source_width: 2,
            source_height: 2,
            full: None,
            sight: Default::default(),
            live,
        }
    }

    #[test]
    fn a_live_source_never_queues_the_newest_frame_wins() {
        let setup = setup("test://");
        let (inlet, rx) = Inlet::new(setup.stats.clone());
        let (_stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let mut deliver = deliverer(&setup, "a".into(), &Arc::new(inlet), &stop_rx);
        // Inference is stuck: nobody takes frames.
        for pts in 0..5 {
            assert!(deliver(raw(pts, true)));
        }
        assert_eq!(rx.len(), 1);
        assert_eq!(pts(rx.try_recv().unwrap()), Some(4));
        assert_eq!(setup.stats.frames_dropped.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_file_waits_for_the_analysis_and_stops_when_asked() {
        let setup = setup("file:///clip.mp4");
        let (inlet, rx) = Inlet::new(setup.stats.clone());
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let mut deliver = deliverer(&setup, "a".into(), &Arc::new(inlet), &stop_rx);
        assert!(deliver(raw(0, false)));
        // The channel is full: the next frame waits until it is taken.
        let taker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let first = rx.recv().unwrap();
            let second = rx.recv().unwrap();
            (pts(first), pts(second))
        });
        assert!(deliver(raw(1, false)));
        assert_eq!(taker.join().unwrap(), (Some(0), Some(1)));
        assert_eq!(setup.stats.frames_dropped.load(Ordering::Relaxed), 0);
        // Blocked on a full channel, a stop releases it.
        let (inlet2, _rx2) = Inlet::new(setup.stats.clone());
        let mut deliver = deliverer(&setup, "a".into(), &Arc::new(inlet2), &stop_rx);
        assert!(deliver(raw(2, false)));
        drop(stop_tx);
        assert!(!deliver(raw(3, false)));
    }

    #[test]
    fn decoders_are_described_with_their_threads() {
        let d = |n: &str, t| (n.to_string(), t);
        assert_eq!(describe_decoders(&[]), "none");
        assert_eq!(
            describe_decoders(&[d("avdec_h264", Some(1)), d("vah264dec", None)]),
            "avdec_h264 (1 thread), vah264dec"
        );
        assert_eq!(
            describe_decoders(&[d("avdec_h264", Some(0))]),
            "avdec_h264 (a thread per core)"
        );
    }

    /// A handle on a thread that runs `body` (given the stop signal).
    fn handle(body: impl FnOnce(Receiver<()>) + Send + 'static) -> StreamHandle {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (ended_tx, ended) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::spawn(move || {
            let _ended = ended_tx;
            body(stop_rx);
        });
        StreamHandle {
            name: "s".into(),
            stats: Arc::default(),
            stop: Some(stop_tx),
            thread: Some(thread),
            ended,
        }
    }

    #[test]
    fn a_stream_stuck_in_its_source_is_left_behind_at_the_deadline() {
        // One that stops when asked is joined.
        let polite = handle(|stop| while stop.recv().is_ok() {});
        assert!(polite.join_by(Instant::now() + Duration::from_secs(5)));
        // One stuck (an element that will not stop) does not hold the caller.
        let (release, stuck_until) = crossbeam_channel::bounded::<()>(0);
        let stuck = handle(move |_| {
            let _ = stuck_until.recv();
        });
        let t = Instant::now();
        assert!(!stuck.join_by(t + Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        drop(release);
    }
}
