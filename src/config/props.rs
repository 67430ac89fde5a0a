//! Property tests: loading never panics, whatever the file holds, and
//! `${VAR}` values arrive byte-exact whatever they hold.
//!
//! `PROPTEST_CASES` sets the cases per property (default 256, a second or
//! two); e.g. `PROPTEST_CASES=100000 cargo test --release --lib config::props`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;

use super::parse;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // Shrinking a failure is worth it; persisting it in a file is not.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A folder with the files the valid config names, for all cases.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        std::fs::write(d.path().join("m.onnx"), b"x").expect("model");
        std::fs::write(d.path().join("l.txt"), b"person\ncar\n").expect("labels");
        d
    })
    .path()
}

fn file() -> PathBuf {
    dir().join("c.yaml")
}

/// Loads; `parse` must return, never panic (proptest fails on a panic).
fn load(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<super::Loaded, String> {
    parse(&file(), text, env).map_err(|e| e.to_string())
}

const VALID: &str = "node: edge-1
mqtt:
  url: mqtt://127.0.0.1:1883
  password: ${PW}
  username: \"u-${PW}\"
  client_id: '${PW}'
  keep_alive: ${KA}
http: {listen: \"127.0.0.1:9464\", grace: 5}
models:
  - name: m
    path: m.onnx
    labels: l.txt
    input: {width: 300, height: 300, mean: [0, 0, 0]}
streams:
  - name: a
    source: rtsp://u:pw@10.0.0.5/s
    model: m
    fps: ${FPS}
    labels:
      - &l ${PW}
      - car
      - *l
    options: {transport: tcp, latency_ms: 50}
  - name: b
    source: test://
    model: m
";

fn valid_env(pw: String) -> impl Fn(&str) -> Option<String> {
    move |k| match k {
        "PW" => Some(pw.clone()),
        "KA" => Some("60".into()),
        "FPS" => Some("5".into()),
        _ => None,
    }
}

/// Pieces YAML gives meaning to, and keys and values of the config.
fn yamlish() -> impl Strategy<Value = String> {
    // Few arms: a many-armed prop_oneof! generates slowly.
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            ": ",
            ":",
            "- ",
            "\n",
            "\n  ",
            "  ",
            "\t",
            "{",
            "}",
            "[",
            "]",
            ", ",
            "\"",
            "'",
            "\\",
            " #",
            "&a ",
            "*a",
            "!!str ",
            "!!binary ",
            "|\n",
            ">-\n",
            "---\n",
            "...\n",
            "? ",
            "<<: ",
            "${PW}",
            "${",
            "${UNSET}",
            "\u{E000}",
            "~",
            "1.0e12",
            "-1",
            ".nan",
            "18446744073709551616",
        ])
        .prop_map(String::from),
        2 => prop::sample::select(vec![
            "mqtt", "models", "streams", "node", "http", "name", "path", "model", "source",
            "fps", "labels", "options", "input", "output", "url", "password", "qos",
            "description", "password_file", "m.onnx", "test://", "rtsp://h/s",
        ])
        .prop_map(String::from),
        1 => prop::collection::vec(prop::char::range('a', 'z'), 1..8).prop_map(String::from_iter),
        1 => (0u32..10_000).prop_map(|n| n.to_string()),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..120).prop_map(|p| p.concat())
}

/// What may happen to one line of a valid config.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// An extra `key: value` line with this indentation.
    Insert(usize, usize, String, String),
    /// The value after `: ` on a line replaced.
    Value(usize, String),
    /// Indentation changed by one or two spaces.
    Indent(usize, bool),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("~".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("[x, 1]".to_string()),
        Just("0".to_string()),
        Just("-5".to_string()),
        Just("1e400".to_string()),
        Just("${PW}".to_string()),
        Just("\"a\\x\"".to_string()),
        "[ -~]{0,12}",
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let key = prop_oneof![
        "[a-z_]{1,10}",
        prop::sample::select(vec!["name", "fps", "model", "streams", "mqtt", "loop"])
            .prop_map(String::from),
    ];
    let edit = prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        (any::<usize>(), 0..8usize, key, scalar())
            .prop_map(|(i, n, k, v)| Edit::Insert(i, n, k, v)),
        (any::<usize>(), scalar()).prop_map(|(i, v)| Edit::Value(i, v)),
        (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Edit::Indent(i, d)),
    ];
    prop::collection::vec(edit, 1..6)
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Delete(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::Insert(i, indent, k, v) => {
                let at = i % (lines.len() + 1);
                lines.insert(at, format!("{}{k}: {v}", " ".repeat(*indent)));
            }
            Edit::Value(i, v) if !lines.is_empty() => {
                let l = &mut lines[i % n];
                if let Some(c) = l.find(": ") {
                    l.truncate(c + 2);
                    l.push_str(v);
                }
            }
            Edit::Indent(i, deeper) if !lines.is_empty() => {
                let l = &mut lines[i % n];
                if *deeper {
                    l.insert(0, ' ');
                } else if l.starts_with(' ') {
                    l.remove(0);
                }
            }
            _ => {}
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = load(&String::from_utf8_lossy(&bytes), valid_env("x".into()));
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = load(&text, valid_env("x".into()));
    }

    #[test]
    fn yamlish_documents_never_panic(text in yamlish()) {
        let _ = load(&text, valid_env("x".into()));
        let _ = load(&format!("mqtt: {{}}\nstreams:\n  - {text}"), valid_env("x".into()));
    }

    #[test]
    fn mutated_valid_configs_never_panic(edits in edits(), pw in any::<String>()) {
        let _ = load(&mutate(VALID, &edits), valid_env(pw));
    }

    #[test]
    fn env_values_arrive_byte_exact(pw in any::<String>(), fps in 0.001f64..1000.0) {
        let env = move |k: &str| match k {
            "PW" => Some(pw.clone()),
            "KA" => Some("60".into()),
            "FPS" => Some(fps.to_string()),
            _ => None,
        };
        let expected = env("PW");
        let l = load(VALID, env).map_err(TestCaseError::fail)?;
        let m = &l.config.mqtt;
        prop_assert_eq!(&m.password, &expected);
        prop_assert_eq!(m.username.clone(), expected.as_ref().map(|p| format!("u-{p}")));
        prop_assert_eq!(&m.client_id, &expected);
        prop_assert_eq!(m.keep_alive, 60);
        prop_assert_eq!(l.config.streams[0].fps, Some(fps));
        let labels = expected.clone().map(|p| vec![p.clone(), "car".to_string(), p]);
        prop_assert_eq!(&l.config.streams[0].labels, &labels);
        prop_assert_eq!(l.config.streams.len(), 2);
        prop_assert_eq!(l.config.models.len(), 1);
        if let Some(p) = expected.filter(|p| !p.is_empty()) {
            prop_assert!(l.secrets.contains(&p));
        }
    }
}

#[test]
fn the_valid_config_is_valid() {
    let l = load(VALID, valid_env("p#ss: w*rd &x\n- y".into())).expect("valid");
    assert_eq!(
        l.config.mqtt.password.as_deref(),
        Some("p#ss: w*rd &x\n- y")
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for open in ["[", "{a: ", "{a: [", "- ", "-\n"] {
        let text = format!("mqtt: {}", open.repeat(100_000));
        let t = std::time::Instant::now();
        let err = load(&text, valid_env("x".into())).unwrap_err();
        assert!(err.lines().count() == 1, "{err}");
        assert!(t.elapsed().as_secs() < 10, "{open:?}: {:?}", t.elapsed());
    }
}
