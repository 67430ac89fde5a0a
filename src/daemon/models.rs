//! The models: loaded once per entry (a session per worker), their labels
//! checked against what the config names.

use std::collections::HashMap;

use tracing::info;

use super::error::DaemonError;
use crate::config::Loaded;
use crate::inference::{Model, runtime};

/// Labels the config names (streams, zones, lines) that their loaded
/// model lacks: a typo there would publish empty lists forever.
pub fn label_problems(
    loaded: &Loaded,
    models: &HashMap<String, Vec<Model>>,
) -> Vec<crate::config::Problem> {
    let labels = |m: &Model| m.labels.names();
    let mut problems = crate::config::check_labels(loaded, |name| {
        let m = models.get(name)?.first()?;
        (!m.labels.is_empty()).then(|| labels(m))
    });
    problems.extend(crate::config::check_classify(loaded, |name| {
        let m = models.get(name)?.first()?;
        Some((m.task == crate::config::Task::Classification).then(|| labels(m)))
    }));
    problems
}

/// Loads every model a stream uses, once, with its configured threads.
pub fn load_models(loaded: &Loaded) -> Result<HashMap<String, Vec<Model>>, DaemonError> {
    let mut models = HashMap::new();
    for s in &loaded.config.streams {
        if !models.contains_key(&s.model) {
            models.insert(s.model.clone(), load_model(loaded, &s.model)?);
        }
    }
    Ok(models)
}

/// As [`load_models`], going on past a model that does not load: those
/// that did, and why each other did not. A model the config does not
/// define is left to the config's own problem.
pub fn load_models_each(loaded: &Loaded) -> (HashMap<String, Vec<Model>>, Vec<DaemonError>) {
    let (mut models, mut failed) = (HashMap::new(), Vec::new());
    let named = loaded
        .config
        .streams
        .iter()
        .flat_map(|s| std::iter::once(&s.model).chain(s.classify.iter().map(|r| &r.model)));
    for name in named {
        let defined = loaded.config.models.iter().any(|m| m.name == *name);
        if !defined || models.contains_key(name) {
            continue;
        }
        match load_model(loaded, name) {
            Ok(m) => {
                models.insert(name.clone(), m);
            }
            // The first failure stands for every stream of that model.
            Err(e) => {
                models.insert(name.clone(), Vec::new());
                failed.push(e);
            }
        }
    }
    models.retain(|_, m| !m.is_empty());
    (models, failed)
}

/// Loads the sessions of the model named `name`.
pub(super) fn load_model(loaded: &Loaded, name: &str) -> Result<Vec<Model>, DaemonError> {
    runtime::init(loaded.config.onnxruntime.as_deref())?;
    // Name the streams that need the model: that is where users look.
    let users: Vec<&str> = loaded
        .config
        .streams
        .iter()
        .filter(|x| x.model == name)
        .map(|x| x.name.as_str())
        .collect();
    let in_streams = |message: String| DaemonError::Stream {
        stream: users.join(", "),
        message,
    };
    let cfg = loaded
        .model(name)
        .ok_or_else(|| in_streams(format!("no model named {name:?}")))?;
    let settings = cfg.settings();
    let (workers, threads) = (settings.workers, settings.threads);
    let cfg = &crate::evaluate::pick::resolve(loaded, cfg, workers, threads);
    let (sessions, ms) = Model::load_workers(&cfg.spec(), workers, threads)
        .map_err(|e| in_streams(e.to_string()))?;
    if let Some(model) = sessions.first() {
        info!(model = %cfg.name, path = %cfg.path.display(), task = %model.task, provider = %model.provider, input = ?(model.input.width, model.input.height), workers, threads, warm_up_ms = ms.round(), "model loaded");
    }
    Ok(sessions)
}
