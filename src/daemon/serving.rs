//! The main loop's state between commands: the file reloaded on SIGHUP,
//! the fleet's cameras as they come, each applied as a plan.

use std::time::Instant;

use tracing::error;

use super::endpoint;
use super::fleet;
use super::live::Running;
use super::plan::Plan;
use super::reload::{Ctx, reload, tell_reload_refused};
use crate::config::Loaded;

/// What the main loop changes as commands come.
pub(super) struct Serving {
    pub(super) running: Running,
    /// What runs: the file's part and the fleet's.
    pub(super) loaded: Loaded,
    /// The file's part of what runs.
    pub(super) file: Loaded,
    /// The fleet's part.
    pub(super) fleet_now: crate::fleet::Desired,
    pub(super) http: endpoint::Http,
}

impl Serving {
    /// SIGHUP: the file again, applied as a plan, or refused with the
    /// running config kept.
    pub(super) fn reload_file(&mut self, ctx: Ctx<'_>, fleet: Option<&crate::fleet::Fleet>) {
        crate::notify::notify("RELOADING=1");
        let started = Instant::now();
        let result = crate::config::load(&self.file.file)
            .map_err(|e| {
                let why = crate::redact::text(&e.to_string());
                error!("reload refused, the running config stays: {why}");
                why
            })
            .and_then(|new_file| {
                let new = fleet::effective(&new_file, &self.fleet_now);
                reload(
                    &mut self.running,
                    &mut self.loaded,
                    new,
                    ctx,
                    &mut self.http,
                    started,
                )?;
                Ok(new_file)
            });
        match result {
            Ok(new_file) => {
                self.file = Plan::running_config(&self.file, &new_file);
                if let Some(f) = fleet {
                    let config = Box::new(self.file.config.clone());
                    f.report(crate::fleet::Report::Reloaded(config));
                }
            }
            Err(why) => tell_reload_refused(&self.running, ctx.routes, &why),
        }
    }

    /// The fleet's cameras for this node changed.
    pub(super) fn fleet(
        &mut self,
        seq: u64,
        desired: &crate::fleet::Desired,
        ctx: Ctx<'_>,
        fleet: Option<&crate::fleet::Fleet>,
    ) {
        let failed = fleet::apply(
            desired,
            &mut self.fleet_now,
            &mut self.running,
            &mut self.loaded,
            &self.file,
            ctx,
            &mut self.http,
        );
        if let Some(f) = fleet {
            f.report(crate::fleet::Report::Applied {
                seq,
                running: self.fleet_now.keys().cloned().collect(),
                failed,
            });
        }
    }
}
