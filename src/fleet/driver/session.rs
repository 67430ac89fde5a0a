//! One session with an etcd member: connect, take or keep the lease, read
//! the fleet's keys and watch them, and reconcile after every change, until
//! the member stops answering or the daemon shuts down.

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper, WatchResponse, WatchStream};

use super::*;

impl Driver {
    pub(super) async fn session(
        &mut self,
        endpoint: &str,
        out: &mut Option<Client>,
    ) -> Result<End, SessionError> {
        // A member that hangs is left well within the lease.
        let patience = (self.s.lease / 3).min(Duration::from_secs(3));
        let mut options = ConnectOptions::new()
            .with_connect_timeout(patience)
            .with_timeout(patience)
            .with_keep_alive(patience, patience);
        if let Some(tls) = self.tls()? {
            options = options.with_tls(tls);
        }
        let client = out.insert(Client::connect([endpoint], Some(options)).await?);
        let id = self.lease(client).await?;
        let (mut keeper, mut acks) = client.lease_keep_alive(id).await?;
        // The first renewal opens the fence before anything is claimed or run.
        let first = Instant::now();
        keeper.keep_alive().await?;
        let ack = tokio::time::timeout(patience, acks.message())
            .await
            .map_err(|_| SessionError::Closed("keep-alive (no first answer)"))??;
        self.renewed(first, ack)?;
        self.register(client, id).await?;
        let watch = self.read_all(client).await?;
        if !self.state.etcd_up.swap(true, Relaxed) {
            info!(node = %self.s.node, nodes = self.view.nodes.len(), cameras = self.view.cameras.len(), "fleet: connected to etcd");
        }
        self.reconcile(client, id).await?;
        self.serve(client, id, (keeper, acks), watch).await
    }

    /// The lease held before, if etcd still has it (then this node's owner
    /// keys are still there too), or a new one.
    async fn lease(&mut self, client: &mut Client) -> Result<i64, SessionError> {
        if let Some(id) = self.lease {
            let ttl = client.lease_time_to_live(id, None).await?.ttl();
            if ttl <= 0 {
                self.lost("the lease ended while etcd was out of reach");
            }
        }
        Ok(match self.lease {
            Some(id) => id,
            None => {
                let ttl = self.s.lease.as_secs() as i64;
                let id = client.lease_grant(ttl, None).await?.id();
                self.lease = Some(id);
                self.registered = None;
                id
            }
        })
    }

    /// Reads every key of the fleet into the view; watches from the next
    /// revision on.
    async fn read_all(&mut self, client: &mut Client) -> Result<WatchStream, SessionError> {
        let prefix = format!("{}/", self.s.prefix);
        let all = client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = all.header().map_or(0, |h| h.revision());
        self.view = View::new(&self.s.prefix);
        for kv in all.kvs() {
            if let (Ok(k), Ok(v)) = (kv.key_str(), kv.value_str()) {
                self.view.apply(k, Some(v), &self.base);
            }
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        Ok(client.watch(prefix.as_str(), Some(options)).await?)
    }

    /// Renews the lease every third of it, applies what the watch sees and
    /// what the daemon reports, and reconciles after each.
    async fn serve(
        &mut self,
        client: &mut Client,
        id: i64,
        (mut keeper, mut acks): (LeaseKeeper, LeaseKeepAliveStream),
        mut watch: WatchStream,
    ) -> Result<End, SessionError> {
        let mut sent = VecDeque::new();
        let mut renew = tokio::time::interval(self.s.lease / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval(Duration::from_millis(200));
        let mut answered = Instant::now();
        loop {
            tokio::select! {
                _ = renew.tick() => {
                    sent.push_back(Instant::now());
                    keeper.keep_alive().await?;
                }
                ack = acks.message() => {
                    let ack = ack?.ok_or(SessionError::Closed("keep-alive"))?;
                    // An answer nobody asked for proves nothing: it opens nothing.
                    let Some(at) = sent.pop_front() else { continue };
                    let was_open = self.state.lease_ok.load(Relaxed);
                    self.renewed(at, Some(ack))?;
                    answered = Instant::now();
                    if !was_open {
                        self.reconcile(client, id).await?;
                    }
                }
                w = watch.message() => {
                    self.watched(w?.ok_or(SessionError::Closed("watch"))?)?;
                    self.reconcile(client, id).await?;
                }
                r = self.reports.recv() => {
                    match r {
                        Some(r) => self.take(r),
                        None => return Ok(End::Shutdown),
                    }
                    self.reconcile(client, id).await?;
                }
                _ = check.tick() => {
                    // Renewals late (etcd slow, this node frozen): the fence
                    // closes by itself; the cameras stop here.
                    self.check_fence();
                    // A member that has stopped answering (it lost its
                    // leader, or hangs) is left for the next.
                    if answered.elapsed() > self.s.lease / 2 {
                        return Err(SessionError::Closed("keep-alive (no answer)"));
                    }
                }
            }
        }
    }

    /// The view after a watch message.
    fn watched(&mut self, w: WatchResponse) -> Result<(), SessionError> {
        if w.canceled() {
            return Err(SessionError::Closed("watch"));
        }
        for e in w.events() {
            let Some(kv) = e.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            let value = match e.event_type() {
                etcd_client::EventType::Put => kv.value_str().ok(),
                etcd_client::EventType::Delete => None,
            };
            if value.is_some()
                && let super::super::view::Key::Stream(name) =
                    super::super::view::Key::parse(&self.s.prefix, key)
            {
                // A new spec is worth another try here.
                self.failed.remove(&name);
            }
            self.view.apply(key, value, &self.base);
        }
        Ok(())
    }
}
