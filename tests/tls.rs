//! mqtts://: a CA and a server certificate made with openssl here, mosquitto
//! with a TLS listener; visiond trusts the CA and refuses another one.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::certs::*;
use common::*;

#[test]
fn visiond_publishes_over_tls_to_a_broker_its_ca_signed_and_refuses_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ca(d, "ca");
    ca(d, "other");
    server_cert(d, "ca", "server");

    // mosquitto started as root reads its files as the mosquitto user.
    use std::os::unix::fs::PermissionsExt;
    for p in [
        d.to_path_buf(),
        d.join("server.key"),
        d.join("server.pem"),
        d.join("ca.pem"),
    ] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let (plain, tls) = (free_port(), free_port());
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\nlistener {plain} 127.0.0.1\nlistener {tls} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
            ca = d.join("ca.pem").display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display()
        ),
    )
    .expect("conf");
    let _broker = Proc(
        Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let messages = subscribe(plain, "visiond/#");

    let config = |node: &str, ca: &str| {
        format!(
            "node: {node}\nmqtt:\n  url: mqtts://127.0.0.1:{tls}\n  ca_file: {}\nmodels:\n  - name: coco\n    path: {}\nstreams:\n  - name: p\n    source: test://?width=160&height=120\n    model: coco\n    fps: 2\n",
            d.join(ca).display(),
            model("ssd_mobilenet_v2_coco.onnx").display()
        )
    };
    let mut trusted = Daemon::start(&config("trusting", "ca.pem"), &[]);
    let mut untrusted = Daemon::start(&config("doubting", "other.pem"), &[]);
    let seen: Vec<Msg> = std::iter::from_fn(|| messages.recv_timeout(Duration::from_secs(8)).ok())
        .take_while(|m| {
            !m.topic.ends_with("/detections") || m.topic.starts_with("visiond/trusting")
        })
        .take(5)
        .collect();
    assert!(
        seen.iter()
            .any(|m| m.topic == "visiond/trusting/p/detections"),
        "nothing over TLS; log:\n{}",
        trusted.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let doubting = std::iter::from_fn(|| messages.recv_timeout(Duration::from_millis(300)).ok())
        .filter(|m| m.topic.starts_with("visiond/doubting"))
        .count();
    assert_eq!(doubting, 0, "a broker signed by another CA was trusted");
    let log = untrusted.log_text();
    assert!(
        log.contains("MQTT broker unreachable") && log.to_lowercase().contains("certificate"),
        "{log}"
    );
    assert_eq!(trusted.terminate().0, Some(0));
    assert_eq!(untrusted.terminate().0, Some(0));
}
