//! The models: names, files, ranges, the description of inputs and
//! outputs, and variants.

use std::collections::HashSet;

use super::rules::*;
use crate::config::Config;
use crate::config::ModelConfig;
use crate::limits::MAX_INPUT_SIDE;

/// Returns the model names.
pub(super) fn validate_models<'a>(
    config: &'a Config,
    problems: &mut Vec<(String, String)>,
) -> HashSet<&'a str> {
    let mut model_names = HashSet::new();
    for (i, m) in config.models.iter().enumerate() {
        if !model_names.insert(m.name.as_str()) {
            problems.push((
                format!("models[{i}].name"),
                format!("duplicate model name {:?}", m.name),
            ));
        }
        validate_files(m, i, problems);
        validate_ranges(m, i, problems);
    }
    model_names
}

/// The model's, its variants' and its labels' files exist; `pick: auto`
/// has variants to pick from.
fn validate_files(m: &ModelConfig, i: usize, problems: &mut Vec<(String, String)>) {
    let at = |f: &str| format!("models[{i}].{f}");
    if !m.path.is_file() {
        problems.push((
            at("path"),
            format!("model {:?}: file {} not found", m.name, m.path.display()),
        ));
    }
    for (j, v) in m.variants.iter().enumerate() {
        if !v.path.is_file() {
            problems.push((
                at(&format!("variants[{j}].path")),
                format!(
                    "model {:?}: variant file {} not found",
                    m.name,
                    v.path.display()
                ),
            ));
        }
        if let Some(a) = v.agreement
            && !(a.is_finite() && a > 0.0 && a <= 1.0)
        {
            problems.push((
                at(&format!("variants[{j}].agreement")),
                "agreement must be above 0 and at most 1 (as `visiond eval` reports it)".into(),
            ));
        }
    }
    if m.pick == crate::config::Pick::Auto && m.variants.is_empty() {
        problems.push((
            at("pick"),
            format!(
                "model {:?}: pick: auto chooses among variants, and there are none",
                m.name
            ),
        ));
    }
    if let Some(l) = &m.labels
        && !l.is_file()
    {
        problems.push((
            at("labels"),
            format!("model {:?}: labels file {} not found", m.name, l.display()),
        ));
    }
}

/// Threads, batch, workers, top_k, iou and the input's and output's
/// numbers within their ranges.
fn validate_ranges(m: &ModelConfig, i: usize, problems: &mut Vec<(String, String)>) {
    let at = |f: &str| format!("models[{i}].{f}");
    within(
        problems,
        at("threads"),
        "threads",
        m.threads,
        1,
        MAX_THREADS,
    );
    within(problems, at("batch"), "batch", m.batch, 1, MAX_BATCH);
    within(
        problems,
        at("workers"),
        "workers",
        m.workers,
        1,
        MAX_WORKERS,
    );
    within(problems, at("top_k"), "top_k", m.top_k, 1, MAX_TOP_K);
    if m.iou.is_some_and(|iou| !(0.0..=1.0).contains(&iou)) {
        problems.push((at("iou"), "iou must be between 0 and 1".into()));
    }
    let input = &m.input;
    for (key, v) in [("width", input.width), ("height", input.height)] {
        within(
            problems,
            at(&format!("input.{key}")),
            &format!("input.{key}"),
            v,
            1,
            MAX_INPUT_SIDE,
        );
    }
    if let Some(mean) = input.mean
        && !mean.iter().all(|v| v.is_finite())
    {
        problems.push((at("input.mean"), "input.mean must be finite".into()));
    }
    // The input is divided by it.
    if let Some(std) = input.std
        && !std.iter().all(|v| v.is_finite() && *v != 0.0)
    {
        problems.push((
            at("input.std"),
            "input.std must be finite and non-zero".into(),
        ));
    }
    if let Some(s) = m.output.scale
        && !(s.is_finite() && s > 0.0)
    {
        problems.push((
            at("output.scale"),
            "output.scale must be a positive number".into(),
        ));
    }
}
