//! What can be checked only once the models are loaded: the labels a
//! stream, its zones, lines and classify rules name.

use std::collections::HashMap;

use super::rules::*;
use crate::config::{Loaded, Problem};

/// The `classify` rules against the loaded models: each rule's model is a
/// classifier, its classes are among the classifier's, a group has an
/// ImageNet-1k classifier to pick from. `classes_of` gives a classifier's
/// labels, `None` for a model that is not a classifier (or did not load).
pub fn check_classify(
    loaded: &Loaded,
    classes_of: impl Fn(&str) -> Option<Option<Vec<String>>>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, s) in loaded.config.streams.iter().enumerate() {
        for (k, r) in s.classify.iter().enumerate() {
            let at = |f: &str| {
                loaded
                    .locator
                    .nearest(&format!("streams[{i}].classify[{k}].{f}"))
            };
            let Some(task) = classes_of(&r.model) else {
                continue; // not loaded: said elsewhere
            };
            let Some(classes) = task else {
                problems.push(Problem {
                    file: loaded.file.clone(),
                    pos: at("model"),
                    message: format!(
                        "{:?} is not a classifier: classify needs one (e.g. an ImageNet model)",
                        r.model
                    ),
                });
                continue;
            };
            if r.group.is_some() && classes.len() != 1000 {
                problems.push(Problem {
                    file: loaded.file.clone(),
                    pos: at("group"),
                    message: format!(
                        "a group picks ImageNet-1k classes; {:?} has {} labels",
                        r.model,
                        classes.len()
                    ),
                });
            }
            for (j, c) in r.classes.iter().enumerate() {
                if classes.iter().any(|x| x == c) {
                    continue;
                }
                let hint = closest(c, classes.iter().map(String::as_str));
                problems.push(Problem {
                    file: loaded.file.clone(),
                    pos: loaded
                        .locator
                        .nearest(&format!("streams[{i}].classify[{k}].classes[{j}]")),
                    message: format!("{:?} has no class {c:?}{hint}", r.model),
                });
            }
        }
    }
    problems
}

/// Every label a stream's `labels:` names that its model does not have: a
/// typo there would publish empty lists forever. Each problem points at the
/// item (`streams[i].labels[j]`) and suggests the model's closest label.
///
/// `labels_of(model)` gives a model's labels (its labels file, in order)
/// once the model is loaded, or `None` when they are unknown (a model
/// without a labels file publishes class numbers): its streams are not
/// checked. `visiond check` calls this after loading the models; the daemon
/// should too, before it starts the streams (and on reload), and refuse
/// with the problems.
pub fn check_labels(
    loaded: &Loaded,
    labels_of: impl Fn(&str) -> Option<Vec<String>>,
) -> Vec<Problem> {
    let mut known: HashMap<&str, Option<Vec<String>>> = HashMap::new();
    let mut problems = Vec::new();
    for (i, s) in loaded.config.streams.iter().enumerate() {
        // The stream's own labels, and those its zones and lines name.
        let mut wanted: Vec<(String, &str)> = Vec::new();
        fn items(path: String, labels: Option<Vec<&str>>) -> Vec<(String, &str)> {
            let labels = labels.unwrap_or_default();
            let at = |j: usize| format!("{path}.labels[{j}]");
            labels
                .into_iter()
                .enumerate()
                .map(|(j, l)| (at(j), l))
                .collect()
        }
        let own = s
            .labels
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect());
        wanted.extend(items(format!("streams[{i}]"), own));
        for (k, z) in s.zones.iter().enumerate() {
            let ls = z.labels.as_ref().map(|v| v.iter().map(|l| &**l).collect());
            wanted.extend(items(format!("streams[{i}].zones[{k}]"), ls));
        }
        for (k, l) in s.lines.iter().enumerate() {
            let ls = l.labels.as_ref().map(|v| v.iter().map(|l| &**l).collect());
            wanted.extend(items(format!("streams[{i}].lines[{k}]"), ls));
        }
        for (k, r) in s.classify.iter().enumerate() {
            let ls = Some(r.labels.iter().map(String::as_str).collect());
            wanted.extend(items(format!("streams[{i}].classify[{k}]"), ls));
        }
        if wanted.is_empty() {
            continue;
        }
        let labels = known
            .entry(s.model.as_str())
            .or_insert_with(|| labels_of(&s.model));
        let Some(labels) = labels else { continue };
        for (path, label) in wanted {
            if labels.iter().any(|l| l == label) {
                continue;
            }
            let closest = labels
                .iter()
                .map(|l| {
                    (
                        strsim::jaro_winkler(&l.to_lowercase(), &label.to_lowercase()),
                        l,
                    )
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match closest {
                Some((_, l)) => format!("; did you mean {l:?}?"),
                None => " (it has none)".to_string(),
            };
            problems.push(loaded.problem_at(
                &path,
                format!(
                    "stream {:?}: model {:?} has no label {label:?}{hint}",
                    s.name, s.model
                ),
            ));
        }
    }
    problems
}
