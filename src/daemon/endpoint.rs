//! The `http:` server as the daemon runs it: started from resolved settings
//! and restarted in place when a reload changes them. It holds no state of
//! its own (the monitor reads the streams' counters), so a restart is safe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::HttpSettings;
use crate::http::auth::{Access, Gate};
use crate::http::{HttpServer, Monitor};
use crate::page::StatusPage;
use crate::publish::MqttCounters;
use crate::stats::StreamStats;

type Streams = Vec<(String, Arc<StreamStats>)>;

/// A port just closed may be refused for a moment (another process, or a
/// socket the kernel has not let go of): binding it again is retried this
/// long.
const REBIND: Duration = Duration::from_secs(2);

pub struct Http {
    mqtt: Arc<MqttCounters>,
    page: Option<Arc<StatusPage>>,
    settings: Option<HttpSettings>,
    server: Option<(Arc<Monitor>, HttpServer)>,
    fleet: Option<Arc<crate::fleet::FleetState>>,
}

impl Http {
    pub fn start(
        settings: Option<HttpSettings>,
        mqtt: Arc<MqttCounters>,
        page: Option<Arc<StatusPage>>,
        streams: Streams,
    ) -> Result<Self, String> {
        let server = serve(settings.as_ref(), &mqtt, &page, streams)?;
        Ok(Self {
            mqtt,
            page,
            settings,
            server,
            fleet: None,
        })
    }

    /// Reports this node's fleet state on /metrics, across restarts too.
    pub fn set_fleet(&mut self, fleet: Option<Arc<crate::fleet::FleetState>>) {
        if let Some((monitor, _)) = &self.server {
            monitor.set_fleet(fleet.clone());
        }
        self.fleet = fleet;
    }

    /// Replaces the streams reported on.
    pub fn set_streams(&self, streams: Streams) {
        if let Some((monitor, _)) = &self.server {
            monitor.set_streams(streams);
        }
    }

    /// Serves with `to` instead; says what it did. On failure the previous
    /// settings serve again and the error says why the new ones did not.
    pub fn restart(
        &mut self,
        to: Option<HttpSettings>,
        streams: Streams,
    ) -> Result<String, String> {
        // The old server goes first: the new one may want its port.
        self.server = None;
        match serve_within(REBIND, to.as_ref(), &self.mqtt, &self.page, &streams) {
            Ok(server) => {
                self.server = server;
                self.set_fleet(self.fleet.clone());
                self.settings = to;
                Ok(match &self.settings {
                    Some(s) => format!("serving on {} (grace {} s)", s.listen, s.grace.as_secs()),
                    None => "the HTTP server is stopped".into(),
                })
            }
            Err(e) => match serve_within(
                REBIND,
                self.settings.as_ref(),
                &self.mqtt,
                &self.page,
                &streams,
            ) {
                Ok(server) => {
                    self.server = server;
                    self.set_fleet(self.fleet.clone());
                    Err(e)
                }
                Err(again) => Err(format!(
                    "{e}, and the previous server did not start again ({again}): no HTTP until a restart"
                )),
            },
        }
    }
}

fn serve_within(
    limit: Duration,
    settings: Option<&HttpSettings>,
    mqtt: &Arc<MqttCounters>,
    page: &Option<Arc<StatusPage>>,
    streams: &Streams,
) -> Result<Option<(Arc<Monitor>, HttpServer)>, String> {
    let deadline = Instant::now() + limit;
    loop {
        match serve(settings, mqtt, page, streams.clone()) {
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            done => return done,
        }
    }
}

fn serve(
    settings: Option<&HttpSettings>,
    mqtt: &Arc<MqttCounters>,
    page: &Option<Arc<StatusPage>>,
    streams: Streams,
) -> Result<Option<(Arc<Monitor>, HttpServer)>, String> {
    let Some(s) = settings else {
        return Ok(None);
    };
    let beyond_loopback = s.beyond_loopback();
    if s.open && beyond_loopback {
        tracing::warn!(
            listen = %s.listen,
            "http.open: the status page shows every camera to anyone who can reach this port, unauthenticated"
        );
    }
    if beyond_loopback && !s.users.is_empty() && s.tls.is_none() {
        tracing::warn!(
            listen = %s.listen,
            "http: passwords cross the network in clear without http.tls (or a TLS proxy)"
        );
    }
    let tls = match &s.tls {
        Some(pem) => Some(
            crate::tls::server_config(&pem.cert, &pem.key).map_err(|e| format!("http.tls.{e}"))?,
        ),
        None => None,
    };
    let gate = Gate::new(Access {
        users: s.users.clone(),
        metrics_token: s.metrics_token.clone(),
        metrics_need_user: beyond_loopback,
    });
    let monitor = Arc::new(Monitor::new(mqtt.clone(), s.grace));
    monitor.set_page(page.clone());
    monitor.set_streams(streams);
    let server = HttpServer::start(&s.listen, tls, gate, monitor.clone())?;
    Ok(Some((monitor, server)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    fn on(port: u16, grace: u64) -> Option<HttpSettings> {
        Some(HttpSettings {
            listen: format!("127.0.0.1:{port}"),
            grace: Duration::from_secs(grace),
            ..HttpSettings::default()
        })
    }

    fn listening(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    #[test]
    fn a_restart_on_the_same_port_takes_the_port_back() {
        let port = free_port();
        let mut http = Http::start(on(port, 30), Arc::default(), None, Vec::new()).expect("starts");
        assert!(listening(port));
        for grace in [5, 6, 7] {
            let done = http.restart(on(port, grace), Vec::new());
            assert_eq!(
                done,
                Ok(format!("serving on 127.0.0.1:{port} (grace {grace} s)"))
            );
            assert!(listening(port));
        }
    }

    #[test]
    fn a_port_that_is_taken_leaves_the_old_server_serving() {
        let (port, taken) = (free_port(), std::net::TcpListener::bind("127.0.0.1:0"));
        let taken = taken.expect("a listener");
        let busy = taken.local_addr().expect("address").port();
        let mut http = Http::start(on(port, 30), Arc::default(), None, Vec::new()).expect("starts");
        let err = http.restart(on(busy, 30), Vec::new()).unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{busy}")), "{err}");
        assert!(listening(port), "the previous server serves again");
        assert_eq!(
            http.restart(None, Vec::new()),
            Ok("the HTTP server is stopped".into())
        );
        // Its socket closes a moment after the drop (see REBIND).
        let deadline = Instant::now() + REBIND;
        while listening(port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!listening(port));
    }
}
