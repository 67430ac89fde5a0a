//! What the fleet loop and the daemon share: the node's settings, the
//! cameras it is to run, what the daemon reports back, and the state
//! `/metrics` and the page show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fence::Fence;
use crate::config::{ClusterConfig, Config, StreamConfig};

/// How this node takes part, resolved from the `cluster:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSettings {
    pub node: String,
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub lease: Duration,
    pub max_streams: Option<usize>,
    pub ca_file: Option<PathBuf>,
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl FleetSettings {
    pub fn resolve(node: &str, c: &ClusterConfig) -> Self {
        Self {
            node: node.into(),
            endpoints: c.etcd.clone(),
            prefix: c.prefix.clone(),
            lease: Duration::from_secs(c.lease_s),
            max_streams: c.max_streams,
            ca_file: c.ca_file.clone(),
            identity: c.cert_file.clone().zip(c.key_file.clone()),
        }
    }
}

/// The fleet cameras this node should run now, by name.
pub type Desired = BTreeMap<String, StreamConfig>;

/// What the daemon tells the fleet loop.
#[derive(Debug)]
pub enum Report {
    /// After a plan: the fleet cameras running here, and those that could
    /// not start (with why).
    Applied {
        /// The number of the set this is the answer to.
        seq: u64,
        running: BTreeSet<String>,
        failed: BTreeMap<String, String>,
    },
    /// The file was reloaded: its models (and stream names) are these now.
    Reloaded(Box<Config>),
}

/// The node's part in the fleet, for /metrics and the status page.
#[derive(Debug)]
pub struct FleetState {
    /// The fence, for its count of messages held back.
    pub fence: Arc<Fence>,
    pub etcd_up: AtomicBool,
    pub lease_ok: AtomicBool,
    /// Cameras whose owner key this node holds.
    pub owned: AtomicUsize,
    /// Live nodes, this one included.
    pub nodes: AtomicUsize,
    /// Cameras this node refuses, with why (a spec its checks reject, or
    /// one that failed to start here).
    pub refused: Mutex<BTreeMap<String, String>>,
}
