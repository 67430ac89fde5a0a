//! The trade-off as a decision: of a model and its cheaper variants, the
//! most accurate one that sustains the load its streams put on this device.
//! Measured here, on the device, never assumed: on a core without
//! dot-product instructions an int8 model may be the slower one.

use std::fmt;
use std::path::PathBuf;

use crate::config::{Loaded, ModelConfig, Pick};
use crate::inference::ModelError;
use crate::inference::measure::{self, InferenceRow};

/// Share of the measured inference capacity the load may take: the rest
/// is for decoding, scaling and publishing, which run on the same cores.
pub const HEADROOM: f64 = 0.75;

/// Frames a second a stream without `fps` is counted for: a camera's rate.
pub const UNBOUNDED_FPS: f64 = 30.0;

/// One candidate: the model itself or a variant, measured.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    /// Against the model itself: 1 for the model, the configured value for
    /// a variant, `None` when nobody measured it.
    pub agreement: Option<f64>,
    /// Its best layout on this device.
    pub best: InferenceRow,
}

impl Candidate {
    /// Share of the device's CPU the load costs on this candidate.
    pub fn cpu_share(&self, load: f64, cores: usize) -> f64 {
        load * self.best.cpu_ms_per_frame / (cores.max(1) as f64 * 1e3)
    }

    pub fn sustains(&self, load: f64) -> bool {
        self.best.fps * HEADROOM >= load
    }
}

/// The decision and what it was made from.
#[derive(Debug, Clone)]
pub struct Choice {
    pub model: String,
    pub load: f64,
    pub cores: usize,
    pub candidates: Vec<Candidate>,
    /// Index of the one to run.
    pub chosen: usize,
    /// Whether it sustains the load (when none does, the fastest is chosen).
    pub sustained: bool,
}

/// Frames a second the config's streams ask of `model`.
pub fn load_of(loaded: &Loaded, model: &str) -> f64 {
    loaded
        .config
        .streams
        .iter()
        .filter(|s| s.model == model)
        .map(|s| s.fps.map_or(UNBOUNDED_FPS, f64::from))
        .sum()
}

/// Index of the candidate to run: the most accurate (highest agreement;
/// unmeasured ones after measured ones, in the order given) that sustains
/// `load`, else the fastest. Pure.
pub fn choose(candidates: &[Candidate], load: f64) -> Option<(usize, bool)> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Stable: ties and unmeasured ones keep the listed order.
    order.sort_by(|&a, &b| {
        let key = |i: usize| candidates[i].agreement.unwrap_or(f64::NEG_INFINITY);
        key(b).total_cmp(&key(a))
    });
    if let Some(&i) = order.iter().find(|&&i| candidates[i].sustains(load)) {
        return Some((i, true));
    }
    let fastest = (0..candidates.len())
        .max_by(|&a, &b| candidates[a].best.fps.total_cmp(&candidates[b].best.fps))?;
    Some((fastest, false))
}

/// Measures `cfg` and its variants over `layouts` with `frames` frames each
/// and chooses for `load`; the runtime is initialised.
pub fn measure(
    cfg: &ModelConfig,
    load: f64,
    layouts: &[(usize, usize)],
    frames: usize,
) -> Result<Choice, ModelError> {
    let mut candidates = Vec::new();
    let files = std::iter::once((cfg.path.clone(), Some(1.0)))
        .chain(cfg.variants.iter().map(|v| (v.path.clone(), v.agreement)));
    for (path, agreement) in files {
        let entry = ModelConfig {
            path: path.clone(),
            ..cfg.clone()
        };
        let mut best: Option<InferenceRow> = None;
        for &(workers, threads) in layouts {
            let row = measure::inference(&entry.spec(), workers, threads, 1, frames)?;
            if best.as_ref().is_none_or(|b| row.fps > b.fps) {
                best = Some(row);
            }
        }
        let best = best.ok_or_else(|| ModelError::Runtime("no layout to measure".into()))?;
        candidates.push(Candidate {
            path,
            agreement,
            best,
        });
    }
    let (chosen, sustained) =
        choose(&candidates, load).ok_or_else(|| ModelError::Runtime("no candidates".into()))?;
    Ok(Choice {
        model: cfg.name.clone(),
        load,
        cores: super::cores(),
        candidates,
        chosen,
        sustained,
    })
}

/// The entry to run: `cfg` itself unless it says `pick: auto`, else the
/// candidate measured best for the config's load (the measurement is
/// logged as the table `visiond bench --pick` prints).
pub fn resolve(loaded: &Loaded, cfg: &ModelConfig, workers: usize, threads: usize) -> ModelConfig {
    if cfg.pick != Pick::Auto || cfg.variants.is_empty() {
        return cfg.clone();
    }
    let load = load_of(loaded, &cfg.name);
    // The layout the daemon will run; a short measurement, at start only.
    match measure(cfg, load, &[(workers, threads)], 60) {
        Ok(choice) => {
            let picked = &choice.candidates[choice.chosen];
            if choice.sustained {
                tracing::info!(model = %cfg.name, path = %picked.path.display(), load, "pick: auto chose\n{choice}");
            } else {
                tracing::warn!(model = %cfg.name, path = %picked.path.display(), load, "pick: auto: no candidate sustains the load, running the fastest\n{choice}");
            }
            ModelConfig {
                path: picked.path.clone(),
                ..cfg.clone()
            }
        }
        Err(e) => {
            tracing::warn!(model = %cfg.name, error = %e, "pick: auto could not measure the variants; running path");
            cfg.clone()
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "model {}: {:.1} frames/s asked on {} cores (a candidate sustains it at {:.0} % of its frames/s)",
            self.model,
            self.load,
            self.cores,
            HEADROOM * 100.0
        )?;
        writeln!(
            f,
            "| candidate | agreement | layout | frames/s | CPU ms/frame | CPU for the load | sustains |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        for (i, c) in self.candidates.iter().enumerate() {
            let name = c.path.file_name().map_or_else(
                || c.path.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            writeln!(
                f,
                "| {}{} | {} | {}x{} | {:.1} | {:.2} | {:.0} % | {} |",
                name,
                if i == self.chosen { " (chosen)" } else { "" },
                c.agreement
                    .map_or("unmeasured".into(), |a| format!("{a:.3}")),
                c.best.workers,
                c.best.threads,
                c.best.fps,
                c.best.cpu_ms_per_frame,
                c.cpu_share(self.load, self.cores) * 100.0,
                if c.sustains(self.load) { "yes" } else { "no" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, agreement: Option<f64>, fps: f64) -> Candidate {
        Candidate {
            path: name.into(),
            agreement,
            best: InferenceRow {
                model: "m".into(),
                workers: 2,
                threads: 1,
                batch: 1,
                frames: 100,
                fps,
                p50_ms: 10.0,
                p99_ms: 12.0,
                cpu_ms_per_frame: 2000.0 / fps,
            },
        }
    }

    #[test]
    fn the_most_accurate_that_sustains_the_load_wins() {
        let c = [
            cand("float", Some(1.0), 90.0),
            cand("int8", Some(0.96), 140.0),
        ];
        // 8 cameras at 5 fps: the float model has room.
        assert_eq!(choose(&c, 40.0), Some((0, true)));
        // 80 frames/s is more than 75 % of 90: int8.
        assert_eq!(choose(&c, 80.0), Some((1, true)));
        // Neither: the fastest, flagged.
        assert_eq!(choose(&c, 200.0), Some((1, false)));
    }

    #[test]
    fn measured_agreement_ranks_before_listing_order_and_unmeasured_last() {
        let c = [
            cand("float", Some(1.0), 10.0),
            cand("unknown", None, 500.0),
            cand("int8", Some(0.9), 400.0),
            cand("narrow", Some(0.95), 300.0),
        ];
        assert_eq!(choose(&c, 100.0), Some((3, true)));
        assert_eq!(choose(&c, 260.0), Some((2, true)));
        assert_eq!(choose(&c, 350.0), Some((1, true)));
        assert_eq!(choose(&[], 1.0), None);
    }

    #[test]
    fn where_int8_is_slower_the_measurement_keeps_the_float_model() {
        // A core without dot-product instructions.
        let c = [
            cand("float", Some(1.0), 20.0),
            cand("int8", Some(0.97), 15.0),
        ];
        assert_eq!(choose(&c, 14.0), Some((0, true)));
        assert_eq!(choose(&c, 40.0), Some((0, false)));
    }

    #[test]
    fn cpu_share_of_a_load() {
        let c = cand("float", Some(1.0), 100.0); // 20 ms of CPU a frame
        assert!((c.cpu_share(40.0, 2) - 0.4).abs() < 1e-9);
    }
}
