//! The fleet loop's I/O with etcd: one session at a time (connect, keep
//! the lease alive, read everything, then watch), each change turned into
//! claims, releases and a new set of cameras for the daemon. A broken
//! session is started again; the lease is kept across sessions while etcd
//! still has it, so a short outage moves no camera.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{error, info, warn};

use super::fence::Fence;
use super::state::{Desired, FleetSettings, FleetState, Report};
use super::view::{Registration, View};
use crate::config::Config;

mod session;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd closed the {0} stream")]
    Closed(&'static str),
    #[error("the lease ended at etcd")]
    LeaseLost,
    #[error(
        "another live node is registered as {0:?} (or this node's previous run, whose lease ends within lease_s); waiting"
    )]
    Duplicate(String),
    #[error("cannot read a TLS file: {0}")]
    Tls(String),
}

/// Why a session ended without an error.
enum End {
    /// The daemon is stopping.
    Shutdown,
}

pub(super) struct Driver {
    s: FleetSettings,
    base: Config,
    desired: Box<dyn Fn(u64, Desired) + Send>,
    reports: UnboundedReceiver<Report>,
    state: Arc<FleetState>,
    fence: Arc<Fence>,
    view: View,
    lease: Option<i64>,
    /// Fleet cameras the daemon runs, as it last said.
    running: BTreeSet<String>,
    /// Fleet cameras that failed to start here, with why.
    failed: BTreeMap<String, String>,
    /// The set last handed to the daemon, and its number.
    sent: Desired,
    seq: u64,
    /// The number of the last set the daemon answered.
    answered: u64,
    /// The registration last written under the lease.
    registered: Option<Registration>,
    /// Refusals already logged (spec text by camera), so each is said once.
    logged: BTreeMap<String, String>,
    /// The cameras were stopped for a lapsed lease and the daemon has not
    /// said they are gone: the fence stays closed until it does, so no
    /// frame from before the lapse leaves under a new lease.
    /// (The number of the set that stopped them.)
    draining: Option<u64>,
}

impl Driver {
    pub(super) fn new(
        s: FleetSettings,
        base: Config,
        desired: Box<dyn Fn(u64, Desired) + Send>,
        reports: UnboundedReceiver<Report>,
        state: Arc<FleetState>,
        fence: Arc<Fence>,
    ) -> Self {
        let view = View::new(&s.prefix);
        Self {
            s,
            base,
            desired,
            reports,
            state,
            fence,
            view,
            lease: None,
            running: BTreeSet::new(),
            failed: BTreeMap::new(),
            sent: Desired::new(),
            seq: 0,
            answered: 0,
            registered: None,
            logged: BTreeMap::new(),
            draining: None,
        }
    }

    pub(super) fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                error!("fleet: cannot start its runtime: {e}; no fleet camera runs here");
                return;
            }
        };
        rt.block_on(self.run_sessions());
    }

    async fn run_sessions(&mut self) {
        let mut retry = Duration::from_millis(250);
        let mut last_error = String::new();
        // Endpoints are tried one at a time, in turn: a dead member is
        // left at once for the next, and only a whole round of failures
        // waits (longer each round).
        let (mut at, mut failed_in_round) = (0, 0);
        loop {
            let mut client = None;
            let endpoint = self.s.endpoints[at % self.s.endpoints.len()].clone();
            let result = self.session(&endpoint, &mut client).await;
            if self.state.etcd_up.swap(false, Relaxed) {
                (retry, failed_in_round) = (Duration::from_millis(250), 0);
            }
            match result {
                Ok(End::Shutdown) => {
                    self.revoke(client).await;
                    return;
                }
                Err(e) => {
                    let why = e.to_string();
                    if why != last_error {
                        warn!(node = %self.s.node, %endpoint, "fleet: {why}; retrying");
                        last_error = why;
                    }
                    if matches!(e, SessionError::LeaseLost) {
                        self.lost("the lease ended at etcd");
                    }
                }
            }
            at += 1;
            failed_in_round += 1;
            let round_over = failed_in_round >= self.s.endpoints.len();
            let pause = if round_over {
                retry
            } else {
                Duration::from_millis(50)
            };
            if self.wait(pause, round_over).await.is_err() {
                self.revoke(None).await;
                return;
            }
            if round_over {
                failed_in_round = 0;
                // Within a third of the lease: an extension for etcd being
                // down (in wait) must come before the fence runs out.
                retry = (retry * 2)
                    .min(Duration::from_secs(2))
                    .min(self.s.lease / 3);
            }
        }
    }

    /// Between sessions: reports are taken, and the lease clock watched.
    /// Errs when the daemon is stopping.
    async fn wait(&mut self, d: Duration, probe: bool) -> Result<(), ()> {
        // etcd refusing on every endpoint is etcd down, not this node cut
        // off: no lease can end while no etcd runs (and etcd gives every
        // lease a fresh time to live when it comes back), so the cameras
        // here are nobody else's. Silence is another matter.
        if probe
            && self.lease.is_some()
            && !self.fence.left(Instant::now()).is_zero()
            && self.all_endpoints_refuse().await
        {
            self.fence.extend_to(Instant::now() + self.s.lease);
        }
        let deadline = tokio::time::Instant::now() + d;
        loop {
            self.check_fence();
            tokio::select! {
                r = self.reports.recv() => match r {
                    Some(r) => self.take(r),
                    None => return Err(()),
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// Whether every endpoint's host refuses a TCP connection: the hosts
    /// are there and no etcd listens. (One that accepts but fails the
    /// session proves nothing: this node may be the one etcd cannot hear.)
    async fn all_endpoints_refuse(&self) -> bool {
        for e in &self.s.endpoints {
            let Some(addr) = url::Url::parse(e)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            else {
                return false;
            };
            let probe = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_secs(1), probe).await {
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                _ => return false,
            }
        }
        true
    }

    fn renewed(
        &mut self,
        at: Instant,
        ack: Option<etcd_client::LeaseKeepAliveResponse>,
    ) -> Result<(), SessionError> {
        let ack = ack.ok_or(SessionError::Closed("keep-alive"))?;
        if ack.ttl() <= 0 {
            return Err(SessionError::LeaseLost);
        }
        // Cameras of a lapsed lease still stopping: their frames must not
        // leave under this one.
        if self.draining.is_none() {
            self.fence
                .renewed(at, Duration::from_secs(ack.ttl() as u64));
            self.state.lease_ok.store(true, Relaxed);
        }
        Ok(())
    }

    fn tls(&self) -> Result<Option<etcd_client::TlsOptions>, SessionError> {
        let Some(ca) = &self.s.ca_file else {
            return Ok(None);
        };
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| SessionError::Tls(format!("{}: {e}", p.display())))
        };
        let mut tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        if let Some((cert, key)) = &self.s.identity {
            tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(tls))
    }

    fn take(&mut self, r: Report) {
        match r {
            Report::Applied {
                seq,
                running,
                failed,
            } => {
                for (name, why) in &failed {
                    error!(node = %self.s.node, camera = %name, "fleet: camera failed to start here: {why}");
                }
                self.answered = self.answered.max(seq);
                if self.draining.is_some_and(|d| seq >= d) && running.is_empty() {
                    self.draining = None;
                }
                self.running = running;
                self.failed.extend(failed);
                self.allow();
            }
            Report::Reloaded(base) => {
                // A stream of the file may take a former fleet camera's name.
                self.fence
                    .forget(base.streams.iter().map(|s| s.name.clone()).collect());
                self.base = *base;
                self.view.recheck(&self.base);
            }
        }
    }

    /// The registration this node should have now.
    fn registration(&self) -> Registration {
        Registration {
            max_streams: self.s.max_streams,
            models: self.base.models.iter().map(|m| m.name.clone()).collect(),
            refused: self
                .view
                .refused_here()
                .into_iter()
                .chain(self.failed.keys().cloned())
                .collect(),
        }
    }

    /// Writes the registration under the lease, unless another node holds the name.
    async fn register(&mut self, client: &mut Client, lease: i64) -> Result<(), SessionError> {
        let r = self.registration();
        if self.registered.as_ref() == Some(&r) {
            return Ok(());
        }
        let key = format!("{}/nodes/{}", self.s.prefix, self.s.node);
        let value = serde_json::to_string(&r).unwrap_or_default();
        let put = || {
            TxnOp::put(
                key.as_str(),
                value.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )
        };
        let free = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([put()]);
        let ours = Txn::new()
            .when([Compare::lease(key.as_str(), CompareOp::Equal, lease)])
            .and_then([put()]);
        if !client.txn(free).await?.succeeded() && !client.txn(ours).await?.succeeded() {
            return Err(SessionError::Duplicate(self.s.node.clone()));
        }
        self.registered = Some(r);
        Ok(())
    }

    /// Claims, releases and hands the daemon its cameras, until nothing
    /// more changes.
    async fn reconcile(&mut self, client: &mut Client, lease: i64) -> Result<(), SessionError> {
        self.log_refusals();
        self.register(client, lease).await?;
        let me = self.s.node.clone();
        // A camera handed to the daemon may be starting there still: it is
        // let go of only once the daemon says it is not running.
        let busy: BTreeSet<String> = self
            .running
            .iter()
            .chain(self.sent.keys())
            .cloned()
            .collect();
        let steps = self.view.steps(&me, &busy);
        let mut claimed = false;
        if self.fence.is_open(Instant::now()) {
            for name in &steps.claim {
                let key = format!("{}/owners/{name}", self.s.prefix);
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        me.as_str(),
                        Some(PutOptions::new().with_lease(lease)),
                    )]);
                if client.txn(txn).await?.succeeded() {
                    info!(node = %me, camera = %name, "fleet: camera claimed");
                    self.view.owners.insert(name.clone(), me.clone());
                    claimed = true;
                }
            }
        }
        // Nothing is let go of while the daemon has sets still to apply:
        // an older answer may not list a camera a newer set starts.
        let settled = self.answered >= self.seq;
        for name in steps.release.iter().filter(|_| settled) {
            let key = format!("{}/owners/{name}", self.s.prefix);
            let txn = Txn::new()
                .when([Compare::value(key.as_str(), CompareOp::Equal, me.as_str())])
                .and_then([TxnOp::delete(key.as_str(), None)]);
            client.txn(txn).await?;
            info!(node = %me, camera = %name, "fleet: camera released");
            self.view.owners.remove(name);
        }
        let steps = if claimed {
            self.view.steps(&me, &busy)
        } else {
            steps
        };
        self.hand_over(if self.fence.is_open(Instant::now()) {
            steps.run
        } else {
            Desired::new()
        });
        self.state.nodes.store(self.view.nodes.len(), Relaxed);
        self.state.owned.store(
            self.view.owners.values().filter(|o| **o == me).count(),
            Relaxed,
        );
        Ok(())
    }

    /// Gives the daemon a new set of cameras, if it differs.
    fn hand_over(&mut self, run: Desired) {
        if run == self.sent {
            return;
        }
        self.sent = run.clone();
        self.seq += 1;
        self.allow();
        (self.desired)(self.seq, run);
    }

    /// What may publish: what the daemon was told to run, and what it still
    /// runs while this node owns it.
    fn allow(&self) {
        let me = &self.s.node;
        let owned = |c: &&String| self.view.owners.get(*c) == Some(me);
        let names = self
            .sent
            .keys()
            .chain(self.running.iter().filter(owned))
            .cloned()
            .collect();
        self.fence.allow(names);
    }

    /// Stops the cameras here once the fence has closed.
    fn check_fence(&mut self) {
        if !self.fence.is_open(Instant::now()) && self.state.lease_ok.swap(false, Relaxed) {
            warn!(node = %self.s.node, "fleet: the lease could not be renewed in time; this node's fleet cameras stop");
            self.stop_all();
        }
    }

    /// The lease is gone: so are this node's owner keys.
    fn lost(&mut self, why: &str) {
        if self.lease.take().is_some() {
            warn!(node = %self.s.node, "fleet: {why}; this node's fleet cameras stop and it joins again");
        }
        self.fence.close();
        self.state.lease_ok.store(false, Relaxed);
        let me = self.s.node.clone();
        self.view.owners.retain(|_, o| *o != me);
        self.registered = None;
        self.stop_all();
    }

    /// Stops every fleet camera here, and waits for the daemon to say so
    /// before the fence opens again.
    fn stop_all(&mut self) {
        self.hand_over(Desired::new());
        if self.answered < self.seq {
            // Until the daemon answers this set (or a later one).
            self.draining = Some(self.seq);
        }
    }

    fn log_refusals(&mut self) {
        let mut refused = BTreeMap::new();
        for (name, c) in &self.view.cameras {
            if let Err(why) = &c.spec {
                if self.logged.get(name) != Some(&c.text) {
                    error!(node = %self.s.node, camera = %name, "fleet: camera refused: {why}");
                }
                refused.insert(name.clone(), why.clone());
            }
        }
        self.logged = self
            .view
            .cameras
            .iter()
            .filter(|(_, c)| c.spec.is_err())
            .map(|(n, c)| (n.clone(), c.text.clone()))
            .collect();
        refused.extend(self.failed.clone());
        *crate::sync::locked(&self.state.refused) = refused;
    }

    /// On the way out: the cameras have stopped; the lease goes, so the
    /// others take them now rather than in lease_s.
    async fn revoke(&mut self, client: Option<Client>) {
        let Some(id) = self.lease.take() else { return };
        let client = match client {
            Some(c) => Some(c),
            None => {
                let o = ConnectOptions::new().with_connect_timeout(Duration::from_millis(500));
                Client::connect(&self.s.endpoints, Some(o)).await.ok()
            }
        };
        if let Some(mut c) = client {
            let revoke = c.lease_revoke(id);
            match tokio::time::timeout(Duration::from_secs(1), revoke).await {
                Ok(Ok(_)) => {
                    info!(node = %self.s.node, "fleet: lease revoked; the others take this node's cameras")
                }
                _ => {
                    warn!(node = %self.s.node, "fleet: could not revoke the lease; the others take this node's cameras when it ends")
                }
            }
        }
    }
}
