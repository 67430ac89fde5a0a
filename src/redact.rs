//! Keeps secrets out of logs and status messages.

use std::sync::RwLock;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers values (passwords, `${VAR}` substitutions) that [`text`] must hide.
pub fn register(secrets: &[String]) {
    if let Ok(mut s) = SECRETS.write() {
        for secret in secrets {
            if secret.len() >= 3 && !s.contains(secret) {
                s.push(secret.clone());
            }
        }
    }
}

/// `text` with every registered secret and every URL password replaced by `***`.
pub fn text(text: &str) -> String {
    let mut out = url_passwords(text);
    if let Ok(secrets) = SECRETS.read() {
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
    }
    out
}

/// A URL fit for logs: `rtsp://user:***@host/path`.
pub fn url(u: &str) -> String {
    text(u)
}

/// Replaces the password part of anything shaped `scheme://user:password@`.
fn url_passwords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_url_passwords() {
        assert_eq!(
            url("rtsp://admin:hunter2@10.0.0.5:554/s1"),
            "rtsp://admin:***@10.0.0.5:554/s1"
        );
        assert_eq!(url("rtsp://10.0.0.5/s1"), "rtsp://10.0.0.5/s1");
        assert_eq!(
            text("could not open rtsp://a:b@h/x and mqtt://c:d@e"),
            "could not open rtsp://a:***@h/x and mqtt://c:***@e"
        );
    }

    #[test]
    fn hides_registered_secrets() {
        register(&["topsecret-42".to_string()]);
        assert_eq!(
            text("password topsecret-42 rejected"),
            "password *** rejected"
        );
    }
}
