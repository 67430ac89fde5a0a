//! `visiond eval`: what a variant of a detector (int8, a smaller width
//! multiplier, another input size) costs in agreement against a reference,
//! on the user's own footage, next to what it saves in time and memory on
//! this device. One table, so the trade-off is read in one place.

pub mod agreement;
pub mod footage;
pub mod pick;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Loaded, Task};
use crate::frame::Output;
use crate::inference::measure::{self, InferenceRow};
use crate::inference::{Model, ModelError, runtime};

pub use agreement::{Agreement, Counts};
pub use footage::{FootageError, Pick};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Footage(#[from] FootageError),
    #[error("model {0:?} is not in the config")]
    Unknown(String),
    #[error("model {0:?} is a classifier: the evaluation compares detectors")]
    NotDetector(String),
}

/// What one model costs on this device.
#[derive(Debug, Clone)]
pub struct Cost {
    pub model: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// Resident memory one loaded and warmed-up session added.
    pub session_mib: f64,
    /// Pure inference per thread layout.
    pub speed: Vec<InferenceRow>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub footage: PathBuf,
    pub min_score: f32,
    pub agreement: Agreement,
    pub reference: Cost,
    pub variant: Cost,
}

/// What to measure besides agreement.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub pick: Pick,
    /// Score at which an object counts, on both sides.
    pub min_score: f32,
    /// Frames per speed measurement; 0 skips speed.
    pub speed_frames: usize,
}

/// Runs `reference` and `variant` on every picked frame of `footage` and
/// measures both models' cost.
pub fn evaluate(
    loaded: &Loaded,
    reference: &str,
    variant: &str,
    footage: &Path,
    opts: Options,
) -> Result<Report, EvalError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    let files = footage::files(footage)?;
    // What the first session of a process allocates once (thread pools,
    // the runtime's own tables) would be charged to whichever loads first.
    let (_first, _) = load(loaded, reference)?;
    let (mut r, r_mib) = load(loaded, reference)?;
    let (mut v, v_mib) = load(loaded, variant)?;
    let sizes = [
        (r.input.width, r.input.height),
        (v.input.width, v.input.height),
    ];
    // Low enough that NMS sees what the threshold will judge.
    let cut = opts.min_score.min(0.3);
    let mut agreement = Agreement::default();
    let mut failure = None;
    let mut left = opts.pick.limit;
    for file in &files {
        let pick = Pick {
            limit: left,
            ..opts.pick
        };
        let handed = footage::decode(file, &sizes, pick, &mut |views| match (
            r.infer(&views[0], cut),
            v.infer(&views[1], cut),
        ) {
            (Ok(Output::Detections(a)), Ok(Output::Detections(b))) => {
                agreement.add_frame(&a, &b, opts.min_score);
                true
            }
            (Err(e), _) | (_, Err(e)) => {
                failure = Some(e);
                false
            }
            _ => false,
        })?;
        if let Some(e) = failure.take() {
            return Err(e.into());
        }
        left = left.saturating_sub(handed);
        if left == 0 {
            break;
        }
    }
    drop((r, v, _first));
    let cost = |name: &str, session_mib| -> Result<Cost, EvalError> {
        let cfg = loaded
            .model(name)
            .ok_or_else(|| EvalError::Unknown(name.into()))?;
        let mut speed = Vec::new();
        if opts.speed_frames > 0 {
            for (workers, threads) in measure::layouts(cores()) {
                speed.push(measure::inference(
                    &cfg.spec(),
                    workers,
                    threads,
                    1,
                    opts.speed_frames,
                )?);
            }
        }
        Ok(Cost {
            model: name.into(),
            path: cfg.path.clone(),
            bytes: std::fs::metadata(&cfg.path).map_or(0, |m| m.len()),
            session_mib,
            speed,
        })
    };
    Ok(Report {
        footage: footage.to_path_buf(),
        min_score: opts.min_score,
        agreement,
        reference: cost(reference, r_mib)?,
        variant: cost(variant, v_mib)?,
    })
}

/// A one-thread session of the model, warmed up, and the RSS it added.
fn load(loaded: &Loaded, name: &str) -> Result<(Model, f64), EvalError> {
    let cfg = loaded
        .model(name)
        .ok_or_else(|| EvalError::Unknown(name.into()))?;
    let before = measure::memory_mib().0;
    let mut model = Model::load(&cfg.spec(), 1)?;
    model.warm_up()?;
    if model.task != Task::Detection {
        return Err(EvalError::NotDetector(name.into()));
    }
    Ok((model, (measure::memory_mib().0 - before).max(0.0)))
}

pub use crate::inference::cores;

impl Report {
    /// The best frames/s of a model over the layouts measured.
    pub fn best_fps(cost: &Cost) -> f64 {
        cost.speed.iter().map(|r| r.fps).fold(0.0, f64::max)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, v) = (&self.reference.model, &self.variant.model);
        writeln!(
            f,
            "agreement of {v} with {r} on {} ({} frames; objects at score >= {}, same label, IoU >= {}):",
            self.footage.display(),
            self.agreement.frames,
            self.min_score,
            agreement::IOU
        )?;
        writeln!(
            f,
            "  {:<16} {:>9} {:>9} {:>8} {:>7} {:>9}",
            "label", "objects", "variant", "matched", "recall", "precision"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, label: &str, c: &Counts| {
            writeln!(
                f,
                "  {:<16} {:>9} {:>9} {:>8} {:>7.3} {:>9.3}",
                label,
                c.reference,
                c.variant,
                c.matched,
                c.recall(),
                c.precision()
            )
        };
        for (label, c) in &self.agreement.labels {
            row(f, label, c)?;
        }
        row(f, "all", &self.agreement.total())?;
        writeln!(f, "cost on this device ({} cores):", cores())?;
        writeln!(
            f,
            "  {:<12} {:>7} {:>10} {:>11} {:>9} {:>9} {:>13}",
            "model", "MB", "session MiB", "layout", "frames/s", "p50 ms", "CPU ms/frame"
        )?;
        for c in [&self.reference, &self.variant] {
            let mb = c.bytes as f64 / 1e6;
            if c.speed.is_empty() {
                writeln!(f, "  {:<12} {mb:>7.1} {:>10.0}", c.model, c.session_mib)?;
            }
            for s in &c.speed {
                writeln!(
                    f,
                    "  {:<12} {mb:>7.1} {:>10.0} {:>11} {:>9.1} {:>9.2} {:>13.2}",
                    c.model,
                    c.session_mib,
                    format!("{}x{}", s.workers, s.threads),
                    s.fps,
                    s.p50_ms,
                    s.cpu_ms_per_frame
                )?;
            }
        }
        let (rf, vf) = (
            Self::best_fps(&self.reference),
            Self::best_fps(&self.variant),
        );
        if rf > 0.0 && vf > 0.0 {
            writeln!(
                f,
                "{v}: {:.2}x the frames/s of {r} (best layouts), recall {:.3}, precision {:.3}",
                vf / rf,
                self.agreement.total().recall(),
                self.agreement.total().precision()
            )?;
        }
        Ok(())
    }
}
