//! The status page's access as a user meets it, on a page listening beyond
//! loopback: HTTPS with the configured certificate, a user whose hash came
//! from `visiond passwd`, a bearer token for /metrics, guessers slowed, a
//! renewed certificate taken on reload, and hostile clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use common::certs::*;
use common::*;

const PASSWORD: &str = "correct horse battery";
const TOKEN: &str = "metrics-token-0123456789";

/// An HTTPS client that trusts one CA.
struct Client {
    config: Arc<rustls::ClientConfig>,
    port: u16,
}

struct Reply {
    code: u16,
    head: String,
    body: Vec<u8>,
    /// The leaf certificate the server presented (DER).
    cert: Vec<u8>,
}

impl Client {
    fn new(ca: &Path, port: u16) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).expect("ca") {
            roots.add(c.expect("ca cert")).expect("root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            config: Arc::new(config),
            port,
        }
    }

    /// GET `path` with extra header lines (each ending in \r\n).
    fn get(&self, path: &str, headers: &str) -> Reply {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(self.config.clone(), name).expect("client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // A server that refuses the request may close before it is all sent.
        let _ = write!(
            tls,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
        );
        let mut raw = Vec::new();
        // A close without close_notify after the whole reply is fine here.
        let _ = tls.read_to_end(&mut raw);
        let cert = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = raw.get(split + 4..).unwrap_or_default().to_vec();
        Reply {
            code,
            head,
            body,
            cert,
        }
    }

    fn code(&self, path: &str, headers: &str) -> u16 {
        self.get(path, headers).code
    }
}

fn basic(user: &str, password: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {b}\r\n")
}

/// `visiond passwd` as a user runs it, the password piped in.
fn passwd(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_visiond"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("visiond passwd");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("password");
    let out = child.wait_with_output().expect("passwd output");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn der(pem: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem)
        .expect("pem")
        .next()
        .expect("a cert")
        .expect("cert")
        .to_vec()
}

/// Lets this process hold the idle connections below.
fn raise_file_limit() {
    // SAFETY: getrlimit/setrlimit with a struct of our own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

#[test]
fn the_page_beyond_loopback_asks_for_a_password_over_tls_and_slows_guessers() {
    raise_file_limit();
    let certs = tempfile::tempdir().expect("tempdir");
    let d = certs.path();
    ca(d, "ca");
    server_cert(d, "ca", "page");
    let hash = passwd(PASSWORD);
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let broker = Mosquitto::start();
    let port = free_port();
    let config = format!(
        "node: a\nmqtt:\n  url: {}\nhttp:\n  listen: 0.0.0.0:{port}\n  users:\n    - name: admin\n      password_hash: \"{hash}\"\n  metrics_token: {TOKEN}\n  tls: {{cert: {}, key: {}}}\nmodels:\n  - name: coco\n    path: {}\nstreams:\n  - name: pattern\n    source: test://?width=160&height=120\n    model: coco\n    fps: 2\n",
        broker.url(),
        d.join("page.pem").display(),
        d.join("page.key").display(),
        model("ssd_mobilenet_v2_coco.onnx").display()
    );
    let mut daemon = Daemon::start(&config, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "no page: {}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let checked = Command::new(env!("CARGO_BIN_EXE_visiond"))
        .args(["check", "-c"])
        .arg(daemon.dir.path().join("visiond.yaml"))
        .output()
        .expect("visiond check");
    assert!(checked.status.success(), "{checked:?}");

    let c = Client::new(&d.join("ca.pem"), port);
    let right = basic("admin", PASSWORD);

    // Nothing without credentials but the health check.
    let denied = c.get("/", "");
    assert_eq!(denied.code, 401);
    assert!(
        denied
            .head
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"visiond\""),
        "{}",
        denied.head
    );
    assert_eq!(
        denied.cert,
        der(&d.join("page.pem")),
        "the configured certificate"
    );
    assert_eq!(c.code("/streams/pattern/latest.jpg", ""), 401);
    assert_eq!(c.code("/healthz", ""), 200);
    assert_eq!(c.code("/metrics", ""), 401);

    // The user sees the page and the picture; /metrics takes the token too.
    let page = c.get("/", &right);
    assert_eq!(page.code, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("pattern"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jpg = c.get("/streams/pattern/latest.jpg", &right);
        if jpg.code == 200 {
            assert!(jpg.body.starts_with(&[0xff, 0xd8]), "a JPEG");
            break;
        }
        assert!(Instant::now() < deadline, "no picture: {}", jpg.code);
        std::thread::sleep(Duration::from_millis(500));
    }
    let metrics = c.get("/metrics", &format!("Authorization: Bearer {TOKEN}\r\n"));
    assert_eq!(metrics.code, 200);
    assert!(String::from_utf8_lossy(&metrics.body).contains("visiond_stream_state"));
    assert_eq!(c.code("/metrics", &right), 200);
    assert_eq!(
        c.code("/", &format!("Authorization: Bearer {TOKEN}\r\n")),
        401
    );

    // Plain HTTP on the TLS port gets no page.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let _ = plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // 1500 idle connections: the user is still served.
    let idle: Vec<TcpStream> = (0..1500)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("idle connection"))
        .collect();
    assert_eq!(c.code("/", &right), 200);
    drop(idle);
    // Headers over 16 KiB are refused; the server goes on.
    let long = c.get("/", &format!("X-Long: {}\r\n", "a".repeat(64 * 1024)));
    assert_ne!(long.code, 200);
    assert_eq!(c.code("/healthz", ""), 200);

    // Guessing: three wrong passwords are answered at once, then each one
    // waits longer (1 s, then 2 s) before its 401.
    for i in 0..5 {
        let t = Instant::now();
        assert_eq!(c.code("/", &basic("admin", &format!("guess-{i}"))), 401);
        let took = t.elapsed();
        let owed = [0, 0, 0, 1000, 2000][i];
        assert!(took >= Duration::from_millis(owed), "guess {i}: {took:?}");
    }
    assert_eq!(c.code("/", &right), 200, "the penalty was served");
    // Malformed, over-long and unknown credentials are failures too.
    for bad in [
        "Authorization: Basic !!!\r\n".to_string(),
        format!("Authorization: Basic {}\r\n", "QUFB".repeat(2000)),
        basic("root", PASSWORD),
    ] {
        assert_eq!(c.code("/", &bad), 401, "{bad:.40}");
    }
    assert_eq!(c.code("/", &right), 200);

    // A renewed certificate is taken on reload.
    server_cert(d, "ca", "renewed");
    for ext in ["pem", "key"] {
        std::fs::rename(
            d.join(format!("renewed.{ext}")),
            d.join(format!("page.{ext}")),
        )
        .expect("renew");
    }
    // SAFETY: a signal to the child we started.
    unsafe { libc::kill(daemon.proc.0.id() as i32, libc::SIGHUP) };
    let renewed = der(&d.join("page.pem"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.get("/healthz", "");
        if r.cert == renewed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still the old certificate: {}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.code("/", &right), 200);

    let log = daemon.log_text();
    assert_eq!(
        log.matches("status page: wrong password").count(),
        5,
        "{log}"
    );
    assert!(log.contains("user=admin"), "{log}");
    assert!(log.contains("status page: malformed credentials"), "{log}");
    assert!(log.contains("status page: unknown user"), "{log}");
    for secret in [PASSWORD, "guess-1", TOKEN] {
        assert!(!log.contains(secret), "{secret:?} in the log");
    }
    assert!(
        !log.contains("passwords cross the network in clear"),
        "TLS is on"
    );
    assert_eq!(daemon.terminate().0, Some(0));
}
