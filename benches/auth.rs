//! The status page's passwords: what one login costs (the argon2 hash is
//! slow on purpose), and what each later request costs once its header is
//! remembered, alone and over a real loopback connection to the server.
//!
//!   cargo bench --bench auth
//!
//! Goal: a remembered request within noise of an open one (the page
//! reloads every 3 s; a hash per reload would be a core's worth on a Pi).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use visiond::http::auth::{Access, Gate, Step, Verdict};
use visiond::http::{HttpServer, Monitor};
use visiond::password::hash_password;

const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn gate(hash: &str) -> Gate {
    Gate::new(Access {
        users: vec![("admin".into(), hash.into())],
        ..Access::default()
    })
}

fn login(g: &Gate, header: &[u8]) -> Verdict {
    match g.check("/", HOME, Some(header), Instant::now()) {
        Step::Done(v) => v,
        Step::Hash(a) => g.finish(a, HOME, Instant::now()),
    }
}

fn per(total: Duration, n: u32) -> String {
    let us = total.as_secs_f64() * 1e6 / f64::from(n);
    if us > 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.2} us")
    }
}

/// `n` requests for `path`, one connection each, as a browser's reload.
fn round_trips(port: u16, path: &str, header: &str, n: u32) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n{header}\r\n"
        )
        .expect("send");
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).expect("read");
        assert!(!reply.starts_with(b"HTTP/1.1 401"), "refused");
    }
    t.elapsed()
}

fn main() {
    let n = 10;
    let t = Instant::now();
    let mut hash = String::new();
    for _ in 0..n {
        hash = hash_password("correct horse battery").expect("hash");
    }
    println!(
        "visiond passwd (argon2id, m=19 MiB, t=2, p=1): {}",
        per(t.elapsed(), n)
    );

    let b64 = base64::engine::general_purpose::STANDARD.encode("admin:correct horse battery");
    let header = format!("Basic {b64}");
    let t = Instant::now();
    for _ in 0..n {
        // A new gate remembers nothing: every login is hashed.
        assert_eq!(login(&gate(&hash), header.as_bytes()), Verdict::Allow);
    }
    println!("first request of a login (hashed): {}", per(t.elapsed(), n));

    let g = gate(&hash);
    login(&g, header.as_bytes());
    let m = 200_000;
    let t = Instant::now();
    for _ in 0..m {
        assert_eq!(login(&g, header.as_bytes()), Verdict::Allow);
    }
    println!("a remembered request's check: {}", per(t.elapsed(), m));

    // Over a connection: the same server open and with the user, the
    // same path (no page here: both answer 404, after the check).
    let serve = |gate: Gate| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let monitor = Arc::new(Monitor::new(Arc::default(), Duration::from_secs(30)));
        let server =
            HttpServer::start(&format!("127.0.0.1:{port}"), None, gate, monitor).expect("serve");
        (port, server)
    };
    let (open_port, _open) = serve(Gate::new(Access::default()));
    let (user_port, _user) = serve(gate(&hash));
    let auth = format!("Authorization: {header}\r\n");
    round_trips(open_port, "/", "", 1);
    round_trips(user_port, "/", &auth, 1);
    let k = 2000;
    // Alternated, so that the machine's drift falls on both alike.
    let (mut open, mut remembered) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..10 {
        open += round_trips(open_port, "/", "", k / 10);
        remembered += round_trips(user_port, "/", &auth, k / 10);
    }
    println!(
        "one request over loopback: open {}, with a remembered password {} ({:.2}x)",
        per(open, k),
        per(remembered, k),
        remembered.as_secs_f64() / open.as_secs_f64()
    );
}
