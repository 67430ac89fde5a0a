//! `visiond check` on broken configs (tests/configs/*.yaml): every problem,
//! each as FILE:LINE:COL: message, exactly as each file's `# expect:` lines say.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn broken_configs_get_every_problem_where_it_is() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/configs") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|e| {
                format!(
                    "{}:{}",
                    path.display(),
                    e.replace("{dir}", &dir.display().to_string())
                )
            })
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_visiond"))
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .expect("visiond check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let got: Vec<&str> = stdout.lines().collect();
        assert_eq!(out.status.code(), Some(1), "{}: {stdout}", path.display());
        assert_eq!(got, expected, "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 3);
}

/// `password: ${MQTT_PASSWORD}` as the README writes it, with a value full
/// of YAML: before, the file failed to parse (or grew keys from a newline).
/// It passes check, and the password is printed nowhere.
#[test]
fn env_values_with_yaml_characters_pass_check_and_stay_secret() {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("c.yaml");
    let text = format!(
        "mqtt:\n  username: cam\n  password: ${{MQTT_PASSWORD}}\nmodels:\n  - name: coco\n    path: {}\n    labels: {}\nstreams:\n  - name: door\n    source: test://\n    model: coco\n    fps: ${{FPS}}\n    labels: [person]\n",
        models.join("ssd_mobilenet_v2_coco.onnx").display(),
        models.join("coco_labels.txt").display()
    );
    std::fs::write(&file, text).expect("write");
    for password in [
        "p#ss: w*rd &x",
        "line1\nstreams: []\n- x",
        "\"quoted\" 'and' \\ {[,]}",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_visiond"))
            .args(["check", "-c"])
            .arg(&file)
            .env("MQTT_PASSWORD", password)
            .env("FPS", "5")
            .output()
            .expect("visiond check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{password:?}: {stdout}{stderr}");
        assert!(stdout.contains(": OK"), "{stdout}");
        assert!(stdout.contains("-> coco (5 fps)"), "{stdout}");
        assert!(
            !stdout.contains(password) && !stderr.contains(password),
            "{stdout}{stderr}"
        );
    }
}

/// With `homeassistant`, check names each stream's device and its labels.
#[test]
fn check_shows_the_home_assistant_devices() {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("c.yaml");
    let text = format!(
        "node: n\nhomeassistant: {{}}\nmqtt: {{url: \"mqtt://127.0.0.1:1\"}}\nmodels:\n  - name: coco\n    path: {}\n    labels: {}\nstreams:\n  - {{name: door, source: \"test://\", model: coco, labels: [person]}}\n  - {{name: yard, source: \"test://\", model: coco}}\n",
        models.join("ssd_mobilenet_v2_coco.onnx").display(),
        models.join("coco_labels.txt").display()
    );
    std::fs::write(&file, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_visiond"))
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .expect("visiond check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("home assistant: homeassistant/device/visiond_n_door/config: 7 entities, labels [person]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("home assistant: homeassistant/device/visiond_n_yard/config: 16 entities, labels [person, car, dog, cat]"),
        "{stdout}"
    );
}
