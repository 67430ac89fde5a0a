//! Who may see the status page: users with argon2 password hashes, asked
//! for by HTTP Basic; an optional bearer token for `/metrics`; failures
//! slowed per client address.
//!
//! The hash is slow on purpose (tens of milliseconds), and a browser sends
//! the same `Authorization` header with every request, the page's 3-second
//! reload included: a header that verified is remembered (by its BLAKE2s
//! digest, never in clear) for [`KNOWN_FOR`], so the page costs one hash
//! per user per ten minutes. At most one hash runs at a time: a flood of
//! guesses from many addresses costs one core, never all of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use blake2::{Blake2s256, Digest};

use crate::sync::locked;

/// How long a verified `Authorization` header is taken without hashing.
pub const KNOWN_FOR: Duration = Duration::from_secs(600);
/// Headers remembered at once (users times their browsers).
const KNOWN_MAX: usize = 256;
/// Wrong attempts from one address answered at once; each one after them
/// doubles the wait before that address is heard again, up to [`MAX_WAIT`].
const FREE_FAILURES: u32 = 3;
const MAX_WAIT: Duration = Duration::from_secs(30);
/// An address with no failure for this long starts afresh.
const FORGET: Duration = Duration::from_secs(900);
/// Addresses tracked at once; past it, those not waiting are forgotten.
const STRIKES_MAX: usize = 10_000;
/// Longer credentials are refused unread: no browser sends them.
const MAX_CREDENTIALS: usize = 1024;

/// Who may see what, as configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    /// Names and argon2 hashes (PHC strings).
    pub users: Vec<(String, String)>,
    /// `/metrics` takes `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `/metrics` asks for a user (beyond loopback, with users, no token).
    pub metrics_need_user: bool,
}

/// The answer to one request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// 401, held back by `wait` (the address's penalty). `bearer`: the
    /// challenge names a token rather than a password.
    Deny {
        wait: Duration,
        bearer: bool,
    },
}

/// The first, cheap step of a check: a verdict, or a password to hash.
pub enum Step {
    Done(Verdict),
    Hash(Attempt),
}

/// Credentials that need the slow hash ([`Gate::finish`]).
pub struct Attempt {
    user: Option<usize>,
    password: String,
    key: [u8; 32],
    bearer: bool,
}

struct Strikes {
    failures: u32,
    last: Instant,
    until: Instant,
}

/// The running check: the access rules and what it has learnt.
pub struct Gate {
    access: Access,
    token: Option<[u8; 32]>,
    known: Mutex<HashMap<[u8; 32], Instant>>,
    strikes: Mutex<HashMap<IpAddr, Strikes>>,
    hashing: Mutex<()>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Blake2s256::digest(bytes).into()
}

impl Gate {
    pub fn new(access: Access) -> Self {
        Self {
            token: access
                .metrics_token
                .as_deref()
                .map(|t| digest(t.as_bytes())),
            access,
            known: Mutex::default(),
            strikes: Mutex::default(),
            hashing: Mutex::new(()),
        }
    }

    /// Whether `path` asks for anything at all.
    fn guarded(&self, path: &str) -> (bool, bool) {
        let users = !self.access.users.is_empty();
        match path {
            "/healthz" => (false, false),
            "/metrics" if self.token.is_some() => (true, true),
            "/metrics" => (users && self.access.metrics_need_user, false),
            _ => (users, false),
        }
    }

    /// Everything that needs no hash: open paths, a token, a remembered
    /// header, an address that must wait, malformed credentials.
    pub fn check(
        &self,
        path: &str,
        client: IpAddr,
        authorization: Option<&[u8]>,
        now: Instant,
    ) -> Step {
        let (guarded, bearer) = self.guarded(path);
        if !guarded {
            return Step::Done(Verdict::Allow);
        }
        let deny = |wait| Step::Done(Verdict::Deny { wait, bearer });
        let Some(header) = authorization else {
            // A browser's first request comes without credentials.
            return deny(Duration::ZERO);
        };
        if let Some(wait) = self.waiting(client, now) {
            return deny(wait);
        }
        let key = digest(header);
        if let Some(t) = self.token
            && bearer
            && header.strip_prefix(b"Bearer ").map(digest) == Some(t)
        {
            return Step::Done(Verdict::Allow);
        }
        let remembered = locked(&self.known)
            .get(&key)
            .is_some_and(|at| now.saturating_duration_since(*at) < KNOWN_FOR);
        if remembered {
            locked(&self.strikes).remove(&client);
            return Step::Done(Verdict::Allow);
        }
        match basic(header) {
            Some((name, password)) if !self.access.users.is_empty() => Step::Hash(Attempt {
                user: self.access.users.iter().position(|(n, _)| *n == name),
                password,
                key,
                bearer,
            }),
            _ => {
                let what = if header.starts_with(b"Bearer ") {
                    "a wrong metrics token"
                } else {
                    "malformed credentials"
                };
                tracing::warn!(client = %client, "status page: {what}");
                deny(self.fail(client, now))
            }
        }
    }

    /// The slow half: hashes the attempt's password (one at a time) and
    /// records the outcome.
    pub fn finish(&self, attempt: Attempt, client: IpAddr, now: Instant) -> Verdict {
        let users = &self.access.users;
        // An unknown name is hashed too (against the first user's hash, which
        // it cannot match), so that the time taken does not tell names apart.
        let phc = &users[attempt.user.unwrap_or(0)].1;
        let right = {
            let _one = locked(&self.hashing);
            crate::password::verify(&attempt.password, phc)
        } && attempt.user.is_some();
        if right {
            locked(&self.strikes).remove(&client);
            let mut known = locked(&self.known);
            if known.len() >= KNOWN_MAX {
                known.retain(|_, at| now.saturating_duration_since(*at) < KNOWN_FOR);
                if known.len() >= KNOWN_MAX {
                    known.clear();
                }
            }
            known.insert(attempt.key, now);
            return Verdict::Allow;
        }
        let wait = self.fail(client, now);
        match attempt.user {
            Some(i) => {
                tracing::warn!(client = %client, user = %users[i].0, "status page: wrong password")
            }
            None => tracing::warn!(client = %client, "status page: unknown user"),
        }
        Verdict::Deny {
            wait,
            bearer: attempt.bearer,
        }
    }

    fn waiting(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        locked(&self.strikes)
            .get(&client)
            .map(|s| s.until.saturating_duration_since(now))
            .filter(|w| !w.is_zero())
    }

    /// Counts a failure from `client`; the wait it now owes.
    fn fail(&self, client: IpAddr, now: Instant) -> Duration {
        let mut strikes = locked(&self.strikes);
        if strikes.len() >= STRIKES_MAX {
            strikes.retain(|_, s| s.until > now || now.saturating_duration_since(s.last) < FORGET);
        }
        let s = strikes.entry(client).or_insert(Strikes {
            failures: 0,
            last: now,
            until: now,
        });
        if now.saturating_duration_since(s.last) >= FORGET {
            s.failures = 0;
        }
        s.failures += 1;
        s.last = now;
        let wait = match s.failures.checked_sub(FREE_FAILURES + 1) {
            None => Duration::ZERO,
            Some(n) => Duration::from_secs(1u64 << n.min(5)).min(MAX_WAIT),
        };
        s.until = now + wait;
        wait
    }
}

/// `Basic base64(name:password)` -> (name, password).
fn basic(header: &[u8]) -> Option<(String, String)> {
    if header.len() > MAX_CREDENTIALS {
        return None;
    }
    let encoded = header.strip_prefix(b"Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::SaltString;
    use argon2::{Argon2, PasswordHasher};

    fn basic_header(name: &str, password: &str) -> Vec<u8> {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
        format!("Basic {b}").into_bytes()
    }

    fn gate(metrics_need_user: bool, token: Option<&str>) -> Gate {
        // Cheap parameters: the rules, not the hash, are under test here.
        let params = argon2::Params::new(256, 1, 1, None).expect("params");
        let a2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        let hash = a2
            .hash_password(b"s3cret", &salt)
            .expect("hash")
            .to_string();
        Gate::new(Access {
            users: vec![("admin".into(), hash)],
            metrics_token: token.map(str::to_string),
            metrics_need_user,
        })
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 9));

    fn verdict(g: &Gate, path: &str, header: Option<&[u8]>, now: Instant) -> Verdict {
        match g.check(path, HOME, header, now) {
            Step::Done(v) => v,
            Step::Hash(a) => g.finish(a, HOME, now),
        }
    }

    #[test]
    fn the_page_asks_healthz_never_and_metrics_as_configured() {
        let now = Instant::now();
        let denied = Verdict::Deny {
            wait: Duration::ZERO,
            bearer: false,
        };
        let g = gate(false, None);
        assert_eq!(verdict(&g, "/", None, now), denied);
        assert_eq!(verdict(&g, "/streams/a/latest.jpg", None, now), denied);
        assert_eq!(verdict(&g, "/healthz", None, now), Verdict::Allow);
        assert_eq!(verdict(&g, "/metrics", None, now), Verdict::Allow);
        assert_eq!(verdict(&gate(true, None), "/metrics", None, now), denied);
        let right = basic_header("admin", "s3cret");
        assert_eq!(verdict(&g, "/", Some(&right), now), Verdict::Allow);
        // A token: /metrics takes it, or a user; the page never takes it.
        let g = gate(false, Some("tok"));
        let bearer = Verdict::Deny {
            wait: Duration::ZERO,
            bearer: true,
        };
        assert_eq!(verdict(&g, "/metrics", None, now), bearer);
        assert_eq!(
            verdict(&g, "/metrics", Some(b"Bearer tok"), now),
            Verdict::Allow
        );
        assert_eq!(verdict(&g, "/metrics", Some(b"Bearer tok2"), now), bearer);
        assert_eq!(verdict(&g, "/metrics", Some(&right), now), Verdict::Allow);
        assert_eq!(verdict(&g, "/", Some(b"Bearer tok"), now), denied);
        // No users at all: only the token guards anything.
        let open = Gate::new(Access::default());
        assert_eq!(verdict(&open, "/", None, now), Verdict::Allow);
    }

    #[test]
    fn a_verified_header_is_remembered_for_a_while_and_only_that_header() {
        let g = gate(false, None);
        let now = Instant::now();
        let right = basic_header("admin", "s3cret");
        assert!(matches!(
            g.check("/", HOME, Some(&right), now),
            Step::Hash(_)
        ));
        assert_eq!(verdict(&g, "/", Some(&right), now), Verdict::Allow);
        let later = now + KNOWN_FOR - Duration::from_secs(1);
        assert!(matches!(
            g.check("/", HOME, Some(&right), later),
            Step::Done(Verdict::Allow)
        ));
        assert!(matches!(
            g.check("/", HOME, Some(&right), now + KNOWN_FOR),
            Step::Hash(_)
        ));
        let wrong = basic_header("admin", "s3cres");
        assert!(matches!(
            g.check("/", HOME, Some(&wrong), now),
            Step::Hash(_)
        ));
    }

    #[test]
    fn failures_from_one_address_wait_longer_each_time_and_success_forgives() {
        let g = gate(false, None);
        let mut now = Instant::now();
        let wrong = basic_header("admin", "guess");
        let mut waits = Vec::new();
        for _ in 0..10 {
            match verdict(&g, "/", Some(&wrong), now) {
                Verdict::Deny { wait, .. } => {
                    waits.push(wait.as_secs());
                    now += wait;
                }
                Verdict::Allow => panic!("a wrong password was taken"),
            }
        }
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
        // While it waits, even the right password is not hashed.
        let right = basic_header("admin", "s3cret");
        let waiting = now - Duration::from_secs(20);
        assert!(matches!(
            g.check("/", HOME, Some(&right), waiting),
            Step::Done(Verdict::Deny { .. })
        ));
        assert_eq!(verdict(&g, "/", Some(&right), now), Verdict::Allow);
        assert_eq!(
            verdict(&g, "/", Some(&wrong), now),
            Verdict::Deny {
                wait: Duration::ZERO,
                bearer: false
            },
            "forgiven after a success"
        );
        // Another address owes nothing.
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert!(matches!(
            g.check("/", other, Some(&wrong), now),
            Step::Hash(_)
        ));
    }

    #[test]
    fn malformed_and_unknown_credentials_are_failures() {
        let g = gate(false, None);
        let now = Instant::now();
        for bad in [
            b"Basic !!!".to_vec(),
            b"Basic ".to_vec(),
            b"Digest abc".to_vec(),
            basic_header("admin", "x").repeat(200),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, b':'])
            )
            .into_bytes(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("no-colon")
            )
            .into_bytes(),
            basic_header("root", "s3cret"),
        ] {
            assert!(
                matches!(verdict(&g, "/", Some(&bad), now), Verdict::Deny { .. }),
                "{bad:?}"
            );
        }
    }
}
