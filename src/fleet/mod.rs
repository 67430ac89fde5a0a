//! The fleet: cameras shared by several nodes through etcd. Each node
//! registers under a lease, reads the cameras (`PREFIX/streams/NAME`) and
//! who runs them (`PREFIX/owners/NAME`, under the runner's lease), works out
//! the same assignment as every other node (assign.rs) and claims or lets
//! go of its part with transactions. etcd does the consensus; nothing here
//! votes. The daemon is told which fleet cameras to run, and applies that
//! as a reload plan beside the streams of its file.

pub mod assign;
mod driver;
pub mod fence;
mod state;
pub mod view;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
pub use fence::{Fence, Fenced};
pub use state::{Desired, FleetSettings, FleetState, Report};

/// The running fleet loop; dropped, it revokes the lease so the others
/// take this node's cameras at once.
pub struct Fleet {
    reports: tokio::sync::mpsc::UnboundedSender<Report>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub state: Arc<FleetState>,
    pub fence: Arc<Fence>,
}

impl Fleet {
    /// Starts the loop; `desired` is called (from its thread) with every
    /// new set of fleet cameras to run, numbered (the daemon's report names
    /// the number it answers). `models` are those of `base`.
    pub fn start(
        settings: FleetSettings,
        base: Config,
        desired: impl Fn(u64, Desired) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let fence = Arc::new(Fence::new(Instant::now()));
        let state = Arc::new(FleetState {
            fence: fence.clone(),
            etcd_up: AtomicBool::default(),
            lease_ok: AtomicBool::default(),
            owned: AtomicUsize::default(),
            nodes: AtomicUsize::default(),
            refused: Mutex::default(),
        });
        let driver = driver::Driver::new(
            settings,
            base,
            Box::new(desired),
            rx,
            state.clone(),
            fence.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || driver.run())?;
        Ok(Self {
            reports: tx,
            thread: Some(thread),
            state,
            fence,
        })
    }

    pub fn report(&self, r: Report) {
        // The loop only ends when this handle drops.
        let _ = self.reports.send(r);
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // Closing the channel asks the loop to revoke the lease and end.
        let (tx, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.reports, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
