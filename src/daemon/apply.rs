//! Applying a [`Plan`]: it completes, or it rolls back to what ran before,
//! and says which. The starting and stopping of engines and streams is
//! behind [`Stages`], so the transaction is tested with fakes.

use std::collections::{BTreeSet, HashMap};

use super::error::DaemonError;
use super::plan::{Inventory, Plan};
use crate::config::{Loaded, StreamConfig};

/// Starts and stops the running parts.
pub trait Stages {
    type Engine;
    type Stream;
    /// Loads `model` of `config` and starts its engine, serving no stream yet.
    fn load(&mut self, config: &Loaded, model: &str) -> Result<Self::Engine, DaemonError>;
    /// Starts stream `s`, the `index`th of its config (its fps phase), on `engine`.
    fn start(
        &mut self,
        s: &StreamConfig,
        index: usize,
        engine: &Self::Engine,
    ) -> Result<Self::Stream, DaemonError>;
    /// Stops the streams and waits for them; all are asked first, so they
    /// stop side by side.
    fn stop(&mut self, streams: Vec<Self::Stream>);
    /// Lets an engine whose streams have stopped finish and end.
    fn retire(&mut self, engine: Self::Engine);
}

/// The running engines and streams, by name.
pub struct Parts<E, T> {
    pub engines: HashMap<String, E>,
    pub streams: HashMap<String, T>,
}

impl<E, T> Default for Parts<E, T> {
    fn default() -> Self {
        Self {
            engines: HashMap::new(),
            streams: HashMap::new(),
        }
    }
}

impl<E, T> Parts<E, T> {
    pub fn inventory(&self) -> Inventory {
        Inventory {
            streams: self.streams.keys().cloned().collect(),
            models: self.engines.keys().cloned().collect(),
        }
    }
}

/// What a completed reload did, in streams.
#[derive(Debug, Default, PartialEq)]
pub struct ReloadReport {
    pub kept: usize,
    pub restarted: usize,
    pub added: usize,
    pub removed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A model did not load: nothing was touched.
    #[error("{0}")]
    Refused(DaemonError),
    /// A stream did not start: what the reload started was stopped and the
    /// previous streams run again with their previous settings.
    #[error("{0}")]
    RolledBack(DaemonError),
    /// As `RolledBack`, but some previous streams did not start again.
    #[error("{error}; restarting the previous {} failed: {rollback}", missing.join(", "))]
    Incomplete {
        error: Box<DaemonError>,
        rollback: Box<DaemonError>,
        missing: Vec<String>,
    },
}

/// Moves `parts` from `old` to `new` along `plan` (made against
/// `parts.inventory()`). New models load first; streams stop only then;
/// if a stream does not start, everything goes back as it was.
pub fn apply<S: Stages>(
    stages: &mut S,
    parts: &mut Parts<S::Engine, S::Stream>,
    old: &Loaded,
    new: &Loaded,
    plan: &Plan,
) -> Result<ReloadReport, ApplyError> {
    let mut staged: HashMap<String, S::Engine> = HashMap::new();
    for m in &plan.load {
        match stages.load(new, m) {
            Ok(e) => {
                staged.insert(m.clone(), e);
            }
            Err(e) => {
                retire_all(stages, staged);
                return Err(ApplyError::Refused(e));
            }
        }
    }

    let stopping: BTreeSet<&String> = plan.stopping().collect();
    let stopped: Vec<String> = stopping
        .iter()
        .filter(|n| parts.streams.contains_key(n.as_str()))
        .map(|n| n.to_string())
        .collect();
    let handles = stopped
        .iter()
        .filter_map(|n| parts.streams.remove(n))
        .collect();
    stages.stop(handles);

    let mut started: Vec<(String, S::Stream)> = Vec::new();
    for (i, s) in new.config.streams.iter().enumerate() {
        if !plan.starts(&s.name) {
            continue;
        }
        // A reloaded model's streams go to its new engine.
        let engine = staged.get(&s.model).or_else(|| parts.engines.get(&s.model));
        let result = match engine {
            Some(e) => stages.start(s, i, e),
            None => Err(no_engine(s)),
        };
        match result {
            Ok(h) => started.push((s.name.clone(), h)),
            Err(error) => {
                stages.stop(started.into_iter().map(|(_, h)| h).collect());
                retire_all(stages, staged);
                return Err(restore(stages, parts, old, &stopped, error));
            }
        }
    }

    parts.streams.extend(started);
    for m in &plan.drop {
        if let Some(e) = parts.engines.remove(m) {
            stages.retire(e);
        }
    }
    parts.engines.extend(staged);
    Ok(ReloadReport {
        kept: plan.keep.len(),
        restarted: plan.restart.len(),
        added: plan.add.len(),
        removed: plan.remove.len(),
    })
}

/// Starts the `stopped` streams again as `old` had them, on the engines
/// that still run.
fn restore<S: Stages>(
    stages: &mut S,
    parts: &mut Parts<S::Engine, S::Stream>,
    old: &Loaded,
    stopped: &[String],
    error: DaemonError,
) -> ApplyError {
    let mut missing = Vec::new();
    let mut first_failure = None;
    for (i, s) in old.config.streams.iter().enumerate() {
        if !stopped.contains(&s.name) {
            continue;
        }
        let result = match parts.engines.get(&s.model) {
            Some(e) => stages.start(s, i, e),
            None => Err(no_engine(s)),
        };
        match result {
            Ok(h) => {
                parts.streams.insert(s.name.clone(), h);
            }
            Err(e) => {
                missing.push(s.name.clone());
                first_failure.get_or_insert(e);
            }
        }
    }
    match first_failure {
        None => ApplyError::RolledBack(error),
        Some(rollback) => ApplyError::Incomplete {
            error: Box::new(error),
            rollback: Box::new(rollback),
            missing,
        },
    }
}

fn retire_all<S: Stages>(stages: &mut S, engines: HashMap<String, S::Engine>) {
    for (_, e) in engines {
        stages.retire(e);
    }
}

fn no_engine(s: &StreamConfig) -> DaemonError {
    DaemonError::Stream {
        stream: s.name.clone(),
        message: format!("model {:?} is not loaded", s.model),
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::tests::loaded;
    use super::*;

    /// Engines and streams as records: what runs, with what settings, and
    /// which starts fail.
    #[derive(Default)]
    struct Fake {
        /// Model loads that fail, by name.
        bad_models: Vec<String>,
        /// Stream starts that fail, by name and fps (so the old settings
        /// of a stream can start where the new ones fail).
        bad_starts: Vec<(String, Option<f64>)>,
        /// Engines ever loaded, in order.
        loads: Vec<String>,
        retired: Vec<FakeEngine>,
        stopped: Vec<FakeStream>,
        next_id: u32,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct FakeEngine {
        model: String,
        id: u32,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct FakeStream {
        config: StreamConfig,
        index: usize,
        engine: u32,
    }

    impl Stages for Fake {
        type Engine = FakeEngine;
        type Stream = FakeStream;
        fn load(&mut self, _: &Loaded, model: &str) -> Result<FakeEngine, DaemonError> {
            if self.bad_models.iter().any(|m| m == model) {
                return Err(DaemonError::Mqtt(format!("{model} does not load")));
            }
            self.loads.push(model.into());
            self.next_id += 1;
            Ok(FakeEngine {
                model: model.into(),
                id: self.next_id,
            })
        }
        fn start(
            &mut self,
            s: &StreamConfig,
            index: usize,
            engine: &FakeEngine,
        ) -> Result<FakeStream, DaemonError> {
            assert_eq!(s.model, engine.model);
            if self.bad_starts.contains(&(s.name.clone(), s.fps)) {
                return Err(DaemonError::Stream {
                    stream: s.name.clone(),
                    message: "does not start".into(),
                });
            }
            Ok(FakeStream {
                config: s.clone(),
                index,
                engine: engine.id,
            })
        }
        fn stop(&mut self, streams: Vec<FakeStream>) {
            self.stopped.extend(streams);
        }
        fn retire(&mut self, engine: FakeEngine) {
            self.retired.push(engine);
        }
    }

    type FakeParts = Parts<FakeEngine, FakeStream>;

    fn start_all(fake: &mut Fake, config: &Loaded) -> FakeParts {
        let mut parts = FakeParts::default();
        let plan = Plan::new(config, config, &parts.inventory());
        apply(fake, &mut parts, config, config, &plan).expect("starts");
        parts
    }

    /// Stream name -> (fps, engine id).
    fn running(parts: &FakeParts) -> Vec<(String, Option<f64>, u32)> {
        let mut v: Vec<_> = parts
            .streams
            .iter()
            .map(|(n, s)| (n.clone(), s.config.fps, s.engine))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn engines(parts: &FakeParts) -> Vec<(String, u32)> {
        let mut v: Vec<_> = parts
            .engines
            .iter()
            .map(|(n, e)| (n.clone(), e.id))
            .collect();
        v.sort();
        v
    }

    const A: &str = "{name: a, source: \"test://\", model: m1, fps: 1}";
    const B: &str = "{name: b, source: \"test://\", model: m1, fps: 1}";
    const B2: &str = "{name: b, source: \"test://\", model: m1, fps: 2}";
    const C: &str = "{name: c, source: \"test://\", model: m2, fps: 1}";

    fn reload(
        fake: &mut Fake,
        parts: &mut FakeParts,
        old: &Loaded,
        new: &Loaded,
    ) -> Result<ReloadReport, ApplyError> {
        let plan = Plan::new(old, new, &parts.inventory());
        apply(fake, parts, old, new, &plan)
    }

    #[test]
    fn a_reload_restarts_what_changed_and_keeps_the_rest() {
        let mut fake = Fake::default();
        let old = loaded("", &[A, B]);
        let mut parts = start_all(&mut fake, &old);
        let new = loaded("", &[A, B2, C]);
        let r = reload(&mut fake, &mut parts, &old, &new).expect("applies");
        assert_eq!(
            r,
            ReloadReport {
                kept: 1,
                restarted: 1,
                added: 1,
                removed: 0
            }
        );
        assert_eq!(
            running(&parts),
            vec![
                ("a".into(), Some(1.0), 1),
                ("b".into(), Some(2.0), 1),
                ("c".into(), Some(1.0), 2)
            ]
        );
        assert_eq!(parts.streams["c"].index, 2, "the new file's place");
        assert_eq!(fake.stopped.len(), 1);
        assert!(fake.retired.is_empty());
    }

    #[test]
    fn a_model_that_does_not_load_changes_nothing() {
        let mut fake = Fake::default();
        let old = loaded("", &[A, B]);
        let mut parts = start_all(&mut fake, &old);
        fake.bad_models = vec!["m2".into()];
        let mut new = loaded("", &[A, C]);
        new.config.models[0].threads = Some(3);
        let before = (running(&parts), engines(&parts));
        let err = reload(&mut fake, &mut parts, &old, &new).unwrap_err();
        assert!(matches!(err, ApplyError::Refused(_)), "{err:?}");
        assert_eq!((running(&parts), engines(&parts)), before);
        assert!(fake.stopped.is_empty(), "no stream was touched");
        // m1 had loaded anew before m2 failed: that engine is ended.
        assert_eq!(fake.retired.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_stream_that_does_not_start_rolls_everything_back() {
        // Before: Running::reload stopped b, started a new c, failed on b
        // and returned with c running, b gone and the old config "staying".
        let mut fake = Fake::default();
        let old = loaded("", &[A, B]);
        let mut parts = start_all(&mut fake, &old);
        let before = (running(&parts), engines(&parts));
        fake.bad_starts = vec![("b".into(), Some(2.0))];
        let new = loaded("", &[C, A, B2]);
        let err = reload(&mut fake, &mut parts, &old, &new).unwrap_err();
        let ApplyError::RolledBack(e) = &err else {
            panic!("{err:?}")
        };
        assert!(e.to_string().contains("\"b\": does not start"), "{e}");
        assert_eq!((running(&parts), engines(&parts)), before);
        assert_eq!(parts.streams["b"].index, 1, "b's old place, old phase");
        // c was started then stopped, m2 loaded then ended.
        let stopped: Vec<&str> = fake
            .stopped
            .iter()
            .map(|s| s.config.name.as_str())
            .collect();
        assert_eq!(stopped, ["b", "c"]);
        assert_eq!(
            fake.retired
                .iter()
                .map(|e| e.model.as_str())
                .collect::<Vec<_>>(),
            ["m2"]
        );
    }

    #[test]
    fn a_rollback_on_a_reloaded_model_goes_back_to_the_old_engine() {
        let mut fake = Fake::default();
        let old = loaded("", &[A, B]);
        let mut parts = start_all(&mut fake, &old);
        let before = (running(&parts), engines(&parts));
        let mut new = loaded("", &[A, B2]);
        new.config.models[0].threads = Some(2);
        fake.bad_starts = vec![("b".into(), Some(2.0))];
        let err = reload(&mut fake, &mut parts, &old, &new).unwrap_err();
        assert!(matches!(err, ApplyError::RolledBack(_)), "{err:?}");
        assert_eq!((running(&parts), engines(&parts)), before);
        assert_eq!(
            fake.retired,
            vec![FakeEngine {
                model: "m1".into(),
                id: 2
            }]
        );
    }

    #[test]
    fn a_rollback_that_fails_names_what_is_not_running() {
        let mut fake = Fake::default();
        let old = loaded("", &[A, B]);
        let mut parts = start_all(&mut fake, &old);
        fake.bad_starts = vec![("b".into(), Some(2.0)), ("b".into(), Some(1.0))];
        let new = loaded("", &[A, B2]);
        let err = reload(&mut fake, &mut parts, &old, &new).unwrap_err();
        let ApplyError::Incomplete { missing, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(missing, &["b".to_string()]);
        assert!(
            err.to_string().contains("restarting the previous b failed"),
            "{err}"
        );
        // The next reload sees b is not running and starts it.
        fake.bad_starts.clear();
        let r = reload(&mut fake, &mut parts, &old, &new).expect("applies");
        assert_eq!((r.kept, r.added), (1, 1));
        assert_eq!(running(&parts)[1], ("b".into(), Some(2.0), 1));
    }

    #[test]
    fn removed_streams_and_unused_models_end_after_their_streams() {
        let mut fake = Fake::default();
        let old = loaded("", &[A, C]);
        let mut parts = start_all(&mut fake, &old);
        let new = loaded("", &[A]);
        let r = reload(&mut fake, &mut parts, &old, &new).expect("applies");
        assert_eq!((r.kept, r.removed), (1, 1));
        assert_eq!(engines(&parts), vec![("m1".into(), 1)]);
        assert_eq!(fake.stopped[0].config.name, "c");
        assert_eq!(fake.retired[0].model, "m2");
    }

    /// A config from a choice per stream name (absent, or model and fps)
    /// and whether m1 has a changed setting.
    fn config_of(choice: &[Option<(bool, bool)>], m1_threads: bool) -> Loaded {
        let entries: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .zip(choice)
            .filter_map(|(name, c)| {
                c.map(|(m2, fast)| {
                    let model = if m2 { "m2" } else { "m1" };
                    let fps = if fast { 2 } else { 1 };
                    format!("{{name: {name}, source: \"test://\", model: {model}, fps: {fps}}}")
                })
            })
            .collect();
        let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
        let mut l = loaded("", &refs);
        if m1_threads {
            l.config.models[0].threads = Some(2);
        }
        l
    }

    type Snapshot = (Vec<(String, StreamConfig, u32)>, Vec<(String, u32)>);

    fn snapshot(parts: &FakeParts) -> Snapshot {
        let mut streams: Vec<_> = parts
            .streams
            .iter()
            .map(|(n, s)| (n.clone(), s.config.clone(), s.engine))
            .collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        (streams, engines(parts))
    }

    proptest::proptest! {
        /// Whatever the two files and whichever starts fail: a reload ends
        /// with exactly the new config running, or exactly the old one
        /// (less the streams it says it could not start again).
        #[test]
        fn a_reload_is_all_or_nothing(
            old in proptest::collection::vec(proptest::option::of((proptest::bool::ANY, proptest::bool::ANY)), 4),
            new in proptest::collection::vec(proptest::option::of((proptest::bool::ANY, proptest::bool::ANY)), 4),
            (old_m1, new_m1) in (proptest::bool::ANY, proptest::bool::ANY),
            bad_m2 in proptest::bool::ANY,
            bad_starts in proptest::collection::vec((0usize..4, proptest::bool::ANY), 0..3),
        ) {
            let (old, new) = (config_of(&old, old_m1), config_of(&new, new_m1));
            let mut fake = Fake::default();
            let mut parts = start_all(&mut fake, &old);
            let before = snapshot(&parts);
            if bad_m2 {
                fake.bad_models = vec!["m2".into()];
            }
            fake.bad_starts = bad_starts
                .iter()
                .map(|(i, fast)| (["a", "b", "c", "d"][*i].to_string(), Some(if *fast { 2.0 } else { 1.0 })))
                .collect();
            let result = reload(&mut fake, &mut parts, &old, &new);
            let (streams, engines) = snapshot(&parts);
            match result {
                Ok(_) => {
                    let want: Vec<(String, StreamConfig)> = {
                        let mut v: Vec<_> = new.config.streams.iter().map(|s| (s.name.clone(), s.clone())).collect();
                        v.sort_by(|a, b| a.0.cmp(&b.0));
                        v
                    };
                    let got: Vec<(String, StreamConfig)> = streams.iter().map(|(n, c, _)| (n.clone(), c.clone())).collect();
                    proptest::prop_assert_eq!(got, want);
                    let used: BTreeSet<String> = new.config.streams.iter().map(|s| s.model.clone()).collect();
                    let loaded: BTreeSet<String> = engines.iter().map(|(m, _)| m.clone()).collect();
                    proptest::prop_assert_eq!(loaded, used);
                    // Every stream runs on the live engine of its model.
                    for (_, c, id) in &streams {
                        proptest::prop_assert!(engines.contains(&(c.model.clone(), *id)));
                    }
                }
                Err(ApplyError::Refused(_) | ApplyError::RolledBack(_)) => {
                    proptest::prop_assert_eq!((streams, engines), before);
                }
                Err(ApplyError::Incomplete { missing, .. }) => {
                    let (mut want, want_engines) = before;
                    want.retain(|(n, _, _)| !missing.contains(n));
                    proptest::prop_assert_eq!((streams, engines), (want, want_engines));
                }
            }
            // Whatever ran and stopped was every engine but the running ones.
            let retired: BTreeSet<u32> = fake.retired.iter().map(|e| e.id).collect();
            let live: BTreeSet<u32> = parts.engines.values().map(|e| e.id).collect();
            proptest::prop_assert!(retired.is_disjoint(&live));
            proptest::prop_assert_eq!(retired.len() + live.len(), fake.loads.len());
        }
    }
}
