//! A new config applied as a plan, all of it or none of it; and what a
//! refused reload tells the people watching.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::apply::{self, ApplyError};
use super::control::{self, ControlThread, Switches};
use super::endpoint;
use super::live::{Live, Running, track_spec};
use super::plan::Plan;
use crate::config::{HttpSettings, Loaded, Task};
use crate::route::Routes;

/// Puts a refused reload on every stream's status (state unchanged), where
/// the people watching the streams will see it.
pub(super) fn tell_reload_refused(running: &Running, routes: &Routes, why: &str) {
    for (name, stats) in running.stats() {
        let Some((state, since_ms)) = stats.state.lock().ok().and_then(|s| *s) else {
            continue;
        };
        let since = std::time::UNIX_EPOCH + Duration::from_millis(since_ms);
        let mut status = crate::status::StreamStatus::new(state, since);
        status.error = Some(format!(
            "config reload refused, running the previous config: {why}"
        ));
        routes.status(&name, status);
    }
}

/// What a reload works with, besides the config and the running parts.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) routes: &'a Routes,
    pub(super) switches: &'a Arc<Switches>,
    pub(super) control: &'a ControlThread,
}

/// The control loop's view of a config: stream names and, with
/// `homeassistant`, each stream's entities; `model` gives a model's task
/// and labels (streams on a model that is not there get none).
pub(super) fn control_setup(
    loaded: &Loaded,
    model: impl Fn(&str) -> Option<(Task, Vec<String>)>,
) -> control::Setup {
    control::Setup {
        streams: loaded
            .config
            .streams
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        discovery: crate::homeassistant::setup(loaded, model),
    }
}

/// New zones and lines on a running stream: its objects stay. Discovery
/// turned on or off changes which labels a stream without `labels` zeroes:
/// running streams take that too.
fn retrack(routes: &Routes, running: &Running, loaded: &Loaded, new: &Loaded, plan: &Plan) {
    let ha = new.config.homeassistant.is_some();
    let ha_toggled = loaded.config.homeassistant.is_some() != ha;
    for s in new.config.streams.iter().filter(|s| {
        plan.regeometry.contains(&s.name) || (ha_toggled && plan.keep.contains(&s.name))
    }) {
        if let Some((spec, rules)) = running
            .engines
            .get(&s.model)
            .and_then(|(e, t)| track_spec(s, *t, &e.labels, ha))
        {
            routes.track(&s.name, spec, rules);
        }
    }
}

/// Applies a new, valid config as a plan: all of it, or none of it. On
/// failure, says why (the error is logged here already).
pub(super) fn reload(
    running: &mut Running,
    loaded: &mut Loaded,
    new: Loaded,
    ctx: Ctx<'_>,
    http: &mut endpoint::Http,
    started: Instant,
) -> Result<(), String> {
    let Ctx {
        routes,
        switches,
        control,
    } = ctx;
    crate::redact::register(&new.secrets);
    let plan = Plan::new(loaded, &new, &running.inventory());
    if let Some(notice) = plan.restart_notice(loaded, &new) {
        warn!("{notice}");
    }
    let mut live = Live {
        routes,
        switches,
        homeassistant: new.config.homeassistant.is_some(),
        clock: Arc::new(crate::clock::SystemClock),
    };
    routes.set_models(&new.model_specs());
    let result = apply::apply(&mut live, running, loaded, &new, &plan);
    let failed = match result {
        Ok(r) => {
            let mut next = Plan::running_config(loaded, &new);
            if plan.http {
                let to = HttpSettings::resolve(new.config.http.as_ref());
                match http.restart(to, running.stats()) {
                    Ok(what) => info!("reload: http changed; {what}"),
                    Err(e) => {
                        error!("reload: http changed but {e}; the previous http settings stay");
                        next.config.http = loaded.config.http.clone();
                    }
                }
            }
            // What is retained for a removed stream goes with it.
            for name in &plan.remove {
                routes.removed(name);
            }
            retrack(routes, running, loaded, &new, &plan);
            info!(
                kept = r.kept,
                restarted = r.restarted,
                added = r.added,
                removed = r.removed,
                ms = started.elapsed().as_millis() as u64,
                "reloaded"
            );
            *loaded = next;
            if !plan.discovery.is_empty() {
                info!(streams = %plan.discovery.join(", "), "reload: Home Assistant discovery changes");
            }
            control.set(control_setup(loaded, |m| {
                running.engines.get(m).map(|(e, t)| (*t, e.labels.clone()))
            }));
            return Ok(());
        }
        Err(e) => e,
    };
    // Errors may quote a source, credentials and all.
    let why = crate::redact::text(&failed.to_string());
    match failed {
        ApplyError::Refused(_) => error!("reload refused, the running config stays: {why}"),
        ApplyError::RolledBack(_) => {
            error!("reload rolled back: {why}; the previous streams run again as they were")
        }
        ApplyError::Incomplete { .. } => error!("reload rolled back, incompletely: {why}"),
    }
    Err(why)
}
