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
