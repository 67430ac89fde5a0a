//! Loading as users see it: messages and positions of problems.

use std::path::Path;

use super::*;

fn env(k: &str) -> Option<String> {
    (k == "PW").then(|| "s3cret".to_string())
}

fn write_models(dir: &Path) {
    std::fs::write(dir.join("m.onnx"), b"x").unwrap();
    std::fs::write(dir.join("l.txt"), b"a\n").unwrap();
}

#[test]
fn resolves_defaults_paths_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let text = "node: edge-1\nmqtt:\n  password: ${PW}\nmodels:\n  - name: m\n    path: m.onnx\n    labels: l.txt\nstreams:\n  - name: a\n    source: rtsp://u:pw2@10.0.0.5/s\n    model: m\n";
    let l = parse(&dir.path().join("c.yaml"), text, env).unwrap();
    assert_eq!(l.node, "edge-1");
    assert_eq!(l.client_id, "visiond-edge-1");
    assert_eq!(l.config.mqtt.url, "mqtt://127.0.0.1:1883");
    assert_eq!(l.config.mqtt.password.as_deref(), Some("s3cret"));
    assert_eq!(l.config.models[0].path, dir.path().join("m.onnx"));
    assert!(l.secrets.contains(&"s3cret".to_string()));
    assert!(l.secrets.contains(&"pw2".to_string()));
}

#[test]
fn every_unknown_key_is_reported_with_a_suggestion() {
    let text = "mqtt:\n  url: mqtt://h\n  prefx: x\nstreams:\n  - name: a\n    souce: test://\n    model: m\n    options: {latency: 5}\nmodles: []\n";
    let err = parse(Path::new("/c.yaml"), text, env)
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        vec![
            "/c.yaml:3:3: unknown key `prefx` in mqtt; did you mean `prefix`?",
            // What the misspelt keys leave missing is reported in the same run.
            "/c.yaml:5:5: stream \"a\": source is missing",
            "/c.yaml:6:5: unknown key `souce` in streams[0]; did you mean `source`?",
            "/c.yaml:7:12: stream \"a\": no model named \"m\" in models",
            "/c.yaml:8:15: unknown key `latency` in streams[0].options; did you mean `latency_ms`?",
            "/c.yaml:9:1: unknown key `modles` in the top level; did you mean `models`?",
        ],
        "{err}"
    );
}

#[test]
fn the_known_keys_are_the_ones_serde_takes() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    // Nearly every key at once, colour by its other name too: serde takes
    // them all and the schema (which names the keys) has them.
    let text = "node: n\nonnxruntime: x.so\nhttp: {listen: \"127.0.0.1:1\", grace: 1}\nmqtt: {url: \"mqtt://h\", client_id: c, username: u, password: p, prefix: p, qos: 0, spool: s, spool_max_mb: 1, keep_alive: 5, protocol: 5, expiry: 9}\nmodels:\n  - {name: m, path: m.onnx, task: detection, labels: l.txt, workers: 1, threads: 1, batch: 1, top_k: 1, iou: 0.5, providers: [cpu],\n     input: {width: 1, height: 1, layout: nhwc, dtype: uint8, color: rgb, mean: [0, 0, 0], std: [1, 1, 1], resize: stretch},\n     output: {decoder: ssd, scores: s, boxes: b, classes: c, count: n, logits: false, scale: 1.0, class_offset: 1}}\nstreams:\n  - {name: a, source: \"rtsp://h/s\", model: m, fps: 1, min_score: 0.5, labels: [x], max_objects: 1, options: {transport: tcp, latency_ms: 1}, realtime: false, loop: false}\n";
    let r = parse(&dir.path().join("c.yaml"), text, env);
    assert!(r.is_ok(), "{}", r.unwrap_err());
}

#[test]
fn every_semantic_problem_is_reported_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let text = "mqtt: {}\nmodels:\n  - name: m\n    path: nope.onnx\nstreams:\n  - name: a\n    source: test://\n    model: m\n  - name: a\n    source: ftp://x\n    model: z\n    fps: 0\n";
    let f = dir.path().join("c.yaml");
    let ConfigError::Invalid { problems } = parse(&f, text, env).unwrap_err() else {
        panic!("expected problems")
    };
    let got: Vec<(usize, usize)> = problems.iter().map(|p| (p.pos.line, p.pos.col)).collect();
    assert_eq!(got, vec![(4, 11), (9, 11), (10, 13), (11, 12), (12, 10)]);
    assert!(problems[0].message.contains("nope.onnx"));
    assert!(problems[1].message.contains("duplicate stream name"));
    assert!(problems[3].message.contains("no model named \"z\""));
}

#[test]
fn motion_is_on_by_default_off_with_false_and_its_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let stream = |name: &str, motion: &str| {
        format!("  - name: {name}\n    source: test://\n    model: m\n{motion}")
    };
    let text = format!(
        "mqtt: {{}}\nmodels:\n  - name: m\n    path: m.onnx\nstreams:\n{}{}{}",
        stream("a", ""),
        stream("b", "    motion: false\n"),
        stream(
            "c",
            "    motion:\n      threshold: 20\n      still_every_s: 2\n      mask:\n        - [[0, 0], [0.5, 0], [0.5, 0.2]]\n",
        ),
    );
    let loaded = parse(&dir.path().join("c.yaml"), &text, env).expect("valid");
    let motion = |i: usize, task| {
        StreamSettings::resolve(&loaded.config.streams[i], task)
            .unwrap()
            .motion
    };
    let on = motion(0, Task::Detection).expect("on by default");
    assert_eq!(on, crate::motion::stage::MotionSpec::default());
    assert_eq!(motion(1, Task::Detection), None);
    let tuned = motion(2, Task::Detection).expect("on");
    assert_eq!(tuned.detector.threshold, 20);
    assert_eq!(tuned.gate.still_every, std::time::Duration::from_secs(2));
    assert_eq!(tuned.masks.len(), 1);
    assert_eq!(motion(0, Task::Classification), None, "detection only");

    let bad = text
        .replace("threshold: 20", "threshold: 0")
        .replace("still_every_s: 2", "still_every_s: -1")
        .replace("[[0, 0], [0.5, 0], [0.5, 0.2]]", "[[0, 0], [1.5, 0]]");
    let ConfigError::Invalid { problems } =
        parse(&dir.path().join("c.yaml"), &bad, env).unwrap_err()
    else {
        panic!("expected problems")
    };
    let got: Vec<(usize, &str)> = problems
        .iter()
        .map(|p| (p.pos.line, p.message.as_str()))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[0].1.contains("threshold must be from 1 to 255"),
        "{got:?}"
    );
    assert!(got[1].1.contains("still_every_s"), "{got:?}");
    assert!(got[2].1.contains("at least 3 corners"), "{got:?}");
    assert!(got[3].1.contains("normalised"), "{got:?}");
    assert_eq!(got[0].0, 17, "{got:?}");
}

#[test]
fn source_options_belong_to_their_source_kind() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let text = "mqtt: {}\nmodels:\n  - name: m\n    path: m.onnx\nstreams:\n  - name: a\n    source: test://\n    model: m\n    options: {transport: udp}\n  - name: b\n    source: rtsp://h/s\n    model: m\n    options: {format: mjpeg}\n  - name: c\n    source: v4l2:///dev/video0\n    model: m\n    options: {width: 640, height: 480, framerate: 15, format: yuyv}\n  - name: d\n    source: rtsp://h/s\n    model: m\n    options: {transport: udp, latency_ms: 50}\n";
    let ConfigError::Invalid { problems } =
        parse(&dir.path().join("c.yaml"), text, env).unwrap_err()
    else {
        panic!("expected problems")
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!((problems[0].pos.line, problems[0].pos.col), (9, 15));
    assert!(problems[0].message.contains("rtsp:// sources only"));
    assert_eq!(problems[1].pos.line, 13);
    assert!(problems[1].message.contains("v4l2:// sources only"));
    let caps = crate::source::SourceOptions {
        width: Some(640),
        format: Some(crate::source::CaptureFormat::Mjpeg),
        ..Default::default()
    };
    gstreamer::init().unwrap();
    assert_eq!(
        caps.capture_caps().to_string(),
        "image/jpeg, width=(int)640"
    );
}

#[test]
fn the_password_can_come_from_a_file_and_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "from-file-123\nignored\n").unwrap();
    let l = parse(
        &dir.path().join("c.yaml"),
        "mqtt:\n  password_file: pw\n",
        env,
    )
    .unwrap();
    assert_eq!(l.config.mqtt.password.as_deref(), Some("from-file-123"));
    assert!(l.secrets.contains(&"from-file-123".to_string()));
    let err = parse(
        &dir.path().join("c.yaml"),
        "mqtt:\n  password_file: nope\n",
        env,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("c.yaml:2:18: cannot read"),
        "{err}"
    );
}

#[test]
fn undefined_variable_is_an_error_with_position() {
    let err = parse(Path::new("c.yaml"), "mqtt:\n  password: ${NOPE}\n", env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.yaml:2:13: environment variable NOPE is not set"
    );
}

/// The models' labels as `visiond check` reads them.
fn coco(model: &str) -> Option<Vec<String>> {
    (model == "m").then(|| ["person", "bicycle", "car"].map(String::from).to_vec())
}

fn config_with(dir: &Path, mqtt: &str, stream: &str) -> String {
    write_models(dir);
    format!(
        "mqtt:\n{mqtt}models:\n  - name: m\n    path: m.onnx\nstreams:\n  - name: a\n    source: rtsp://h/s\n    model: m\n{stream}"
    )
}

#[test]
fn env_values_are_scalars_byte_exact_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_with(
        dir.path(),
        "  password: ${MQTT_PASSWORD}\n  username: '${USER} x'\n  keep_alive: ${KA}\n",
        "    fps: ${FPS}\n    labels: [\"${L}\"]\n",
    )
    .replace("rtsp://h/s", "rtsp://u:${SPW}@h/s");
    for pw in [
        "p#ss: w*rd &x",
        "a\nmodels: []\n- x",
        "'\"\\ {[,]} ~",
        "null",
        "5",
        "",
    ] {
        let env = |k: &str| match k {
            "MQTT_PASSWORD" => Some(pw.to_string()),
            "USER" => Some("it's".to_string()),
            "KA" => Some("60".to_string()),
            "FPS" => Some("2.5".to_string()),
            "L" => Some("car".to_string()),
            "SPW" => Some("pw-1".to_string()),
            _ => None,
        };
        let l =
            parse(&dir.path().join("c.yaml"), &text, env).unwrap_or_else(|e| panic!("{pw:?}: {e}"));
        let c = &l.config;
        assert_eq!(c.mqtt.password.as_deref(), Some(pw), "{pw:?}");
        assert_eq!(c.mqtt.username.as_deref(), Some("it's x"));
        assert_eq!(c.mqtt.keep_alive, 60);
        assert_eq!(c.streams[0].fps, Some(2.5));
        assert_eq!(c.streams[0].source_text(), "rtsp://u:pw-1@h/s");
        assert!(l.secrets.contains(&"pw-1".to_string()));
        assert_eq!(c.models.len(), 1);
        if !pw.is_empty() {
            assert!(l.secrets.contains(&pw.to_string()), "{pw:?}");
        }
    }
}

#[test]
fn positions_after_env_values_point_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_with(
        dir.path(),
        "  password: \"${LONG}\n    ${LONG}\"\n  username: ${LONG}\n  qos: 7\n",
        "    fps: 0\n",
    );
    let env = |k: &str| (k == "LONG").then(|| "x\n".repeat(50));
    let err = parse(&dir.path().join("c.yaml"), &text, env).unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(String::from).collect();
    let file = dir.path().join("c.yaml").display().to_string();
    assert_eq!(
        lines,
        vec![
            format!("{file}:5:8: qos must be 0 or 1"),
            format!("{file}:13:10: fps must be a positive number"),
        ]
    );
    let err = parse(Path::new("c.yaml"), "mqtt:\n  password: x ${NOPE} y\n", env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.yaml:2:15: environment variable NOPE is not set"
    );
}

#[test]
fn unknown_keys_in_a_description_file_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    std::fs::write(
        dir.path().join("d.yaml"),
        "task: detection\ninput:\n  widht: 3\noutput:\n  decodr: ssd\n",
    )
    .unwrap();
    let text = "mqtt: {}\nmodels:\n  - name: m\n    path: m.onnx\n    description: d.yaml\n";
    let err = parse(&dir.path().join("c.yaml"), text, env)
        .unwrap_err()
        .to_string();
    let d = dir.path().join("d.yaml").display().to_string();
    let lines: Vec<&str> = err
        .lines()
        .map(|l| l.split_once(": ").map_or(l, |x| x.1))
        .collect();
    assert_eq!(
        lines,
        vec![
            format!(
                "model \"m\": description {d}:3:3: unknown key `widht` in input; did you mean `width`?"
            ),
            format!(
                "model \"m\": description {d}:5:3: unknown key `decodr` in output; did you mean `decoder`?"
            ),
        ],
        "{err}"
    );
}

#[test]
fn unknown_keys_come_with_a_type_error_and_without_a_close_match() {
    // serde stops at the first error; unknown keys before it come with it.
    let text = "mqtt: {zzzzzz: 1, qos: x, prefx: 2}\n";
    let err = parse(Path::new("c.yaml"), text, env)
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("c.yaml:1:8: unknown key `zzzzzz` in mqtt; known: ca_file, cert_file"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("c.yaml:1:24: mqtt.qos: invalid type"),
        "{err}"
    );
}

#[test]
fn out_of_range_values_are_problems_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("    fps: 1.0e12\n", "fps must be at most 1000"),
        ("    fps: .nan\n", "fps must be a positive number"),
        ("    min_score: 1.5\n", "min_score must be between 0 and 1"),
        ("    max_objects: 0\n", "max_objects must be from 1 to 1000"),
        (
            "    options: {latency_ms: 600000}\n",
            "latency_ms must be from 0 to 60000",
        ),
    ];
    for (stream, message) in cases {
        let text = config_with(dir.path(), "", stream);
        let err = parse(&dir.path().join("c.yaml"), &text, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{stream}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let mqtt = [
        (
            "  keep_alive: 0\n",
            "2:15: keep_alive must be from 1 to 65535, not 0",
        ),
        (
            "  expiry: 4294967296\n",
            "2:11: expiry must be from 0 to 4294967295",
        ),
        (
            "  spool_max_mb: 10000000\n",
            "2:17: spool_max_mb must be from 1 to 1048576",
        ),
    ];
    for (m, message) in mqtt {
        let text = config_with(dir.path(), m, "");
        let err = parse(&dir.path().join("c.yaml"), &text, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{m}: {err}");
    }
    let models = "mqtt: {}\nmodels:\n  - {name: m, path: m.onnx, batch: 65, threads: 0, top_k: 0, output: {scale: 0}}\n";
    let err = parse(&dir.path().join("c.yaml"), models, env)
        .unwrap_err()
        .to_string();
    for m in [
        "batch must be from 1 to 64, not 65",
        "threads must be from 1 to 256, not 0",
        "top_k must be from 1 to 1000, not 0",
        "output.scale must be a positive number",
    ] {
        assert!(err.contains(m), "{m}: {err}");
    }
}

#[test]
fn labels_a_model_lacks_are_problems_at_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_with(dir.path(), "", "    labels: [person,\n      persn, car]\n");
    let l = parse(&dir.path().join("c.yaml"), &text, env).unwrap();
    let problems = check_labels(&l, coco);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].pos, Pos { line: 10, col: 7 });
    assert_eq!(
        problems[0].message,
        "stream \"a\": model \"m\" has no label \"persn\"; did you mean \"person\"?"
    );
    // Unknown labels (no labels file): not checked.
    assert!(check_labels(&l, |_| None).is_empty());
}

/// A file that does not load has no secrets registered yet: its problems
/// must not quote a variable's value (serde does: `invalid type: string`).
#[test]
fn problems_never_quote_a_variables_value() {
    let text = "mqtt:\n  password: ${PW}\n  qos: ${PW}\n";
    let env = |k: &str| (k == "PW").then(|| "hunter2-secret".to_string());
    let Err(ConfigError::Invalid { problems }) = parse(Path::new("v.yaml"), text, env) else {
        panic!("a string qos is a problem");
    };
    let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(all.iter().any(|p| p.starts_with("v.yaml:3:")), "{all:?}");
    assert!(!all.iter().any(|p| p.contains("hunter2")), "{all:?}");
}

#[test]
fn the_homeassistant_section_is_checked_like_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let base = "mqtt: {url: \"mqtt://h\"}\nmodels: [{name: m, path: m.onnx}]\n";
    let ok = parse(
        &dir.path().join("c.yaml"),
        &format!("{base}homeassistant: {{}}\n"),
        env,
    )
    .expect("a bare section is valid");
    let ha = ok.config.homeassistant.expect("present");
    assert_eq!(ha.prefix, "homeassistant");
    let text = format!("{base}homeassistant:\n  prefix: ha/#\n  prefx: x\n");
    let err = parse(&dir.path().join("c.yaml"), &text, env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.yaml:5:3: unknown key `prefx` in homeassistant; did you mean `prefix`?"),
        "{err}"
    );
    let text = format!("{base}homeassistant:\n  prefix: ha/#\n");
    let err = parse(&dir.path().join("c.yaml"), &text, env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.yaml:4:11: prefix \"ha/#\" must be topic levels without MQTT wildcards"),
        "{err}"
    );
}

#[test]
fn the_cluster_section_is_checked_like_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let base = "mqtt: {url: \"mqtt://h\"}\nmodels: [{name: m, path: m.onnx}]\n";
    let file = dir.path().join("c.yaml");
    let ok = parse(
        &file,
        &format!("{base}cluster: {{etcd: [\"http://127.0.0.1:2379\"]}}\n"),
        env,
    )
    .expect("endpoints alone are valid");
    let c = ok.config.cluster.expect("present");
    assert_eq!(
        (c.prefix.as_str(), c.lease_s, c.max_streams),
        ("/visiond", 10, None)
    );
    let text = format!(
        "{base}cluster:\n  etcd: [\"ftp://x\", \"https://e:2379\"]\n  prefix: visiond/\n  lease_s: 1\n  max_streams: 0\n  cert_file: c.pem\n"
    );
    let err = parse(&file, &text, env).unwrap_err().to_string();
    for expected in [
        "c.yaml:4:10: \"ftp://x\" is not an http(s)://host:port endpoint",
        "c.yaml:4:21: https:// needs ca_file",
        "c.yaml:5:11: prefix \"visiond/\" must be a key path like /visiond",
        "c.yaml:6:12: lease_s must be from 2 to 3600, not 1",
        "c.yaml:7:16: max_streams 0 would take no camera",
        "c.yaml:8:14: cert_file and key_file go together",
    ] {
        assert!(err.contains(expected), "{expected}\nin\n{err}");
    }
}

#[test]
fn the_status_page_beyond_loopback_needs_an_explicit_open() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let base = "mqtt: {url: \"mqtt://h\"}\nmodels: [{name: m, path: m.onnx}]\n";
    let load = |http: &str| parse(&dir.path().join("c.yaml"), &format!("{base}{http}"), env);
    for listen in ["127.0.0.1:9464", "127.0.0.2:9464", "\"[::1]:9464\""] {
        let l = load(&format!("http:\n  listen: {listen}\n")).expect(listen);
        assert!(!l.config.http.expect("http").open);
    }
    for listen in ["0.0.0.0:9464", "192.168.1.5:9464", "\"[::]:9464\""] {
        let err = load(&format!("http:\n  listen: {listen}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.yaml:4:11: ")
                && err.contains("would show every camera to anyone who can reach it")
                && err.contains("add a user under http")
                && err.contains("`visiond passwd`")
                && err.contains("add `open: true`"),
            "{listen}: {err}"
        );
        let l = load(&format!("http:\n  listen: {listen}\n  open: true\n")).expect(listen);
        let settings = HttpSettings::resolve(l.config.http.as_ref()).expect("http");
        assert!(settings.open, "{listen}");
    }
}

#[test]
fn the_status_page_users_token_and_certificate_are_checked_where_written() {
    let dir = tempfile::tempdir().unwrap();
    write_models(dir.path());
    let hash = crate::password::hash_password("pw").expect("hash");
    std::fs::write(dir.path().join("admin.hash"), format!("{hash}\n")).unwrap();
    std::fs::write(dir.path().join("token"), "0123456789abcdef0123\n").unwrap();
    let base = "mqtt: {url: \"mqtt://h\"}\nmodels: [{name: m, path: m.onnx}]\nhttp:\n  listen: 0.0.0.0:9464\n";
    let load = |http: &str| parse(&dir.path().join("c.yaml"), &format!("{base}{http}"), env);
    // A user from a file, and a token from a file: taken, the token a secret.
    let l = load(
        "  users: [{name: admin, password_hash_file: admin.hash}]\n  metrics_token_file: token\n",
    )
    .expect("users");
    let s = HttpSettings::resolve(l.config.http.as_ref()).expect("http");
    assert_eq!(s.users, [("admin".to_string(), hash.clone())]);
    assert_eq!(s.metrics_token.as_deref(), Some("0123456789abcdef0123"));
    assert!(l.secrets.iter().any(|x| x == "0123456789abcdef0123"));
    let err = |http: &str| load(http).unwrap_err().to_string();
    for (http, expected) in [
        (
            format!("  users: [{{name: admin, password_hash: \"{hash}\"}}]\n  open: true\n"),
            "c.yaml:6:9: open: true and users contradict each other",
        ),
        (
            "  users:\n    - {name: admin, password_hash: hunter2}\n".into(),
            "c.yaml:6:36: not a password hash",
        ),
        (
            format!("  users:\n    - {{name: \"a:b\", password_hash: \"{hash}\"}}\n"),
            "c.yaml:6:14: \"a:b\" cannot be typed into a browser's login",
        ),
        (
            format!(
                "  users:\n    - {{name: a, password_hash: \"{hash}\"}}\n    - {{name: a, password_hash: \"{hash}\"}}\n"
            ),
            "c.yaml:7:14: user \"a\" is given twice",
        ),
        (
            "  users:\n    - {name: a}\n".into(),
            "c.yaml:6:14: give password_hash (printed by `visiond passwd`) or password_hash_file",
        ),
        (
            "  users:\n    - {name: a, password_hash_file: nope}\n".into(),
            "c.yaml:6:37: cannot read",
        ),
        (
            "  open: true\n  metrics_token: short\n".into(),
            "c.yaml:6:18: a token shorter than 16 characters",
        ),
        (
            "  open: true\n  tls: {cert: nope.crt, key: nope.key}\n".into(),
            "c.yaml:6:15: cannot read",
        ),
        (
            "  open: true\n  tls: {cert: admin.hash, key: token}\n".into(),
            "c.yaml:6:15: ",
        ),
    ] {
        let e = err(&http);
        assert!(e.contains(expected), "{expected}\nin\n{e}");
    }
}
