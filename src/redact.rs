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

/// Properties of GStreamer elements that carry credentials (rtspsrc
/// `user-pw`, souphttpsrc `proxy-pw`, …), matched on the name's end.
const SECRET_PROPERTIES: &[&str] = &["-pw", "password", "passwd", "passphrase", "secret", "token"];

/// The credentials in a `gst:` launch fragment or a source URL: URL
/// passwords (as written and percent-decoded, as GStreamer may print them)
/// and the values of credential properties.
pub fn source_secrets(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("://") {
        let tail = &rest[i + 3..];
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        if let (Some(at), Some(colon)) = (authority.rfind('@'), authority.find(':'))
            && colon < at
        {
            let password = &authority[colon + 1..at];
            found.push(password.to_string());
            let decoded = percent_decode(password);
            if decoded != password {
                found.push(decoded);
            }
        }
        rest = &tail[end..];
    }
    for (name, value) in properties(source) {
        if is_secret_property(name) && !value.is_empty() {
            found.push(value.to_string());
        }
    }
    found
}

/// Registers the credentials of a stream's source (see [`source_secrets`]).
pub fn register_source(source: &str) {
    register(&source_secrets(source));
}

fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PROPERTIES.iter().any(|p| name.ends_with(p))
}

/// `name=value` pairs of a launch fragment; a value may be quoted.
fn properties(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        // Past the last character that cannot be in a name, which may be
        // wider than a byte.
        let name_start = rest[..eq]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let name = &rest[name_start..eq];
        let after = &rest[eq + 1..];
        let (value, next) = value_at(after);
        out.push((name, value));
        rest = &after[next..];
    }
    out
}

/// The value at the start of `s` (quoted, or up to whitespace or `!`) and
/// where the text after it starts.
fn value_at(s: &str) -> (&str, usize) {
    match s.chars().next() {
        Some(q @ ('"' | '\'')) => match s[1..].find(q) {
            Some(close) => (&s[1..1 + close], close + 2),
            None => (&s[1..], s.len()),
        },
        _ => {
            let end = s
                .find(|c: char| c.is_whitespace() || c == '!' || c == ',')
                .unwrap_or(s.len());
            (&s[..end], end)
        }
    }
}

/// Replaces the values of credential properties (`user-pw=***`).
fn property_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        // Past the last character that cannot be in a name, which may be
        // wider than a byte.
        let name_start = rest[..eq]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let secret = is_secret_property(&rest[name_start..eq]);
        out.push_str(&rest[..=eq]);
        let after = &rest[eq + 1..];
        let (value, next) = value_at(after);
        if secret && !value.is_empty() {
            out.push_str("***");
        } else {
            out.push_str(&after[..next]);
        }
        rest = &after[next..];
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every registered secret, every URL password and every
/// credential property's value replaced by `***`.
pub fn text(text: &str) -> String {
    let mut out = property_values(&url_passwords(text));
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
    fn hides_credentials_of_gst_fragments() {
        let launch = "rtspsrc location=rtsp://u:s3cret%21@h/x user-pw=pw-one proxy-pw=\"two words\" ! decodebin";
        assert_eq!(
            text(launch),
            "rtspsrc location=rtsp://u:***@h/x user-pw=*** proxy-pw=*** ! decodebin"
        );
        assert_eq!(
            source_secrets(launch),
            vec!["s3cret%21", "s3cret!", "pw-one", "two words"]
        );
        // Other properties stay readable.
        assert_eq!(
            text("videotestsrc pattern=ball is-live=true"),
            "videotestsrc pattern=ball is-live=true"
        );
        register_source("souphttpsrc location=http://cam/mjpeg user-pw=kept-out-9");
        assert_eq!(
            text("could not set property \"x\" to \"kept-out-9\""),
            "could not set property \"x\" to \"***\""
        );
    }

    #[test]
    fn a_wide_character_before_a_property_is_no_panic() {
        // Found by config::props: `𘠀=` panicked slicing inside the character.
        assert_eq!(properties("\u{18800}="), vec![("", "")]);
        assert_eq!(properties("é password=x"), vec![("password", "x")]);
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
