//! The HTTP(S) server: hyper on a small tokio runtime of its own thread.
//! Each connection is a task, so thousands of idle ones cost memory, not
//! threads, and a failed login's penalty is a timer, not a blocked server.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, oneshot};

use super::Monitor;
use super::auth::{Gate, Step, Verdict};

/// Connections served at once; one more is closed as soon as accepted.
/// Far above what people and a scraper open, far below the file limit the
/// daemon raises itself to.
const MAX_CONNECTIONS: usize = 4096;
/// A client has this long to finish its request's headers, and its TLS
/// handshake: a connection that says nothing is closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's line and headers, at most (hyper answers 431 beyond).
const MAX_HEAD: usize = 16 * 1024;
/// Threads for the slow parts (a password's hash, a picture's encoding).
const BLOCKING_THREADS: usize = 4;

/// The server's thread; dropping it stops the server and closes its port.
pub struct HttpServer {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    monitor: Arc<Monitor>,
    gate: Gate,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl HttpServer {
    /// Listens on `listen` (the error names it); HTTPS when `tls` is given.
    pub fn start(
        listen: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        gate: Gate,
        monitor: Arc<Monitor>,
    ) -> Result<Self, String> {
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| format!("http.listen {listen}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("http.listen {listen}: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("http-work")
            .build()
            .map_err(|e| format!("http: {e}"))?;
        let shared = Arc::new(Shared {
            monitor,
            gate,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                runtime.block_on(accept(listener, shared, stopped));
                // Open connections and pending penalties end here.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("http: {e}");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::debug!("http accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let client = peer.ip();
            match &shared.tls {
                None => connection(TokioIo::new(tcp), client, shared.clone()).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => connection(TokioIo::new(tls), client, shared.clone()).await,
                        // Plain HTTP on the TLS port, a scanner, a bad client.
                        Ok(Err(e)) => tracing::debug!(client = %client, "http: TLS: {e}"),
                        Err(_) => {
                            tracing::debug!(client = %client, "http: TLS handshake timed out")
                        }
                    }
                }
            }
        });
    }
}

async fn connection<I>(io: TokioIo<I>, client: IpAddr, shared: Arc<Shared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| respond(req, client, shared.clone()));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, service)
        .await;
    if let Err(e) = served {
        tracing::debug!(client = %client, "http: {e}");
    }
}

async fn respond(
    req: Request<Incoming>,
    client: IpAddr,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let authorization = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let verdict = match shared
        .gate
        .check(&path, client, authorization, Instant::now())
    {
        Step::Done(v) => v,
        Step::Hash(attempt) => {
            let s = shared.clone();
            tokio::task::spawn_blocking(move || s.gate.finish(attempt, client, Instant::now()))
                .await
                .unwrap_or(Verdict::Deny {
                    wait: Duration::ZERO,
                    bearer: false,
                })
        }
    };
    if let Verdict::Deny { wait, bearer } = verdict {
        tokio::time::sleep(wait).await;
        let challenge = if bearer {
            "Bearer realm=\"visiond metrics\""
        } else {
            "Basic realm=\"visiond\", charset=\"UTF-8\""
        };
        return Ok(reply(
            401,
            b"authentication required\n".to_vec(),
            "text/plain",
            Some(challenge),
        ));
    }
    let s = shared.clone();
    let (code, body, kind) = tokio::task::spawn_blocking(move || s.monitor.respond(&path))
        .await
        .unwrap_or((500, b"internal error\n".to_vec(), "text/plain"));
    Ok(reply(code, body, kind, None))
}

fn reply(
    code: u16,
    body: Vec<u8>,
    kind: &'static str,
    challenge: Option<&'static str>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Some(c) = challenge {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    response
}
