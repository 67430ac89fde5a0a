//! One stream entry given alone: a fleet camera's value in etcd (JSON or
//! YAML), checked with the same fields and rules as an entry under
//! `streams:` of this node's file, against this node's models.

use std::path::PathBuf;

use super::{Config, ConfigError, Locator, Pos, Problem, StreamConfig};
use super::{load, schema, validate};

/// Parses `text` as the stream `name`, placed beside the streams of `base`.
/// `origin` names where the text came from (an etcd key) in every problem.
/// The name comes from the key; a `name` in the value must be the same.
pub fn parse_stream(
    origin: &str,
    name: &str,
    text: &str,
    base: &Config,
) -> Result<StreamConfig, ConfigError> {
    let file = PathBuf::from(origin);
    let invalid = |problems: Vec<(Pos, String)>| ConfigError::Invalid {
        problems: problems
            .into_iter()
            .map(|(pos, message)| Problem {
                file: file.clone(),
                pos,
                message: message.replace(" in streams[0]", " in the stream entry"),
            })
            .collect(),
    };
    let at_start = Pos { line: 1, col: 1 };
    if !validate::valid_name(name) {
        let m = format!("camera name {name:?} must match [A-Za-z0-9_-]+ (it is used in topics)");
        return Err(invalid(vec![(at_start, m)]));
    }
    if let Err(p) = one_mapping(text) {
        return Err(invalid(vec![p]));
    }
    let (text, shift) = with_name(text, name);
    let back = |p: Pos| shift.back(p);
    let locator = Locator::new(&text);
    let (parsed, unknown) =
        load::deserialize::<StreamConfig>(&text, &locator, schema::config(), "streams[0]");
    let mut problems: Vec<(Pos, String)> = unknown.into_iter().map(|(p, m)| (back(p), m)).collect();
    let stream = match parsed {
        Ok(s) if problems.is_empty() => s,
        Ok(_) => return Err(invalid(problems)),
        Err((pos, message)) => {
            problems.push((back(pos), message));
            return Err(invalid(problems));
        }
    };
    if stream.name != name {
        let pos = back(locator.nearest("name"));
        let m = format!(
            "name {:?} differs from the key's {name:?}: leave name out, or write the same",
            stream.name
        );
        return Err(invalid(vec![(pos, m)]));
    }
    if base.streams.iter().any(|s| s.name == name) {
        let m = format!("this node's file has a stream named {name:?} too; rename one of them");
        return Err(invalid(vec![(at_start, m)]));
    }
    // Validated as the last entry of the node's own streams: names,
    // models and every rule are the file's.
    let mut config = base.clone();
    config.streams.push(stream.clone());
    let index = config.streams.len() - 1;
    let entry = format!("streams[{index}]");
    let mut problems: Vec<(Pos, String)> = validate::validate(&config)
        .into_iter()
        .filter_map(|(path, m)| {
            // The entry's own fields, or the entry as a whole (a missing source).
            let rest = path.strip_prefix(&entry)?;
            let field = rest.strip_prefix('.').or(rest.is_empty().then_some(""))?;
            Some((back(locator.nearest(field)), m))
        })
        .collect();
    problems.sort_by_key(|(p, _)| (p.line, p.col));
    if problems.is_empty() {
        Ok(stream)
    } else {
        Err(invalid(problems))
    }
}

/// The text is one mapping (JSON or YAML), or the problem and where.
fn one_mapping(text: &str) -> Result<(), (Pos, String)> {
    let at_start = Pos { line: 1, col: 1 };
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Mapping(_)) => Ok(()),
        Ok(_) => Err((
            at_start,
            "the value must be one stream entry: a mapping of its fields (JSON or YAML)".into(),
        )),
        Err(e) => {
            let pos = e.location().map_or(at_start, |l| Pos {
                line: l.line(),
                col: l.column(),
            });
            Err((pos, format!("not JSON or YAML: {e}")))
        }
    }
}

/// The key names the camera: a value without `name` gets it, written
/// where it shifts no position the user sees (one line, or one column run
/// on the first line).
fn with_name(text: &str, name: &str) -> (String, Shift) {
    let trimmed = text.trim_start();
    if Locator::new(text).key("name").is_some() {
        (text.to_string(), Shift::None)
    } else if trimmed.starts_with('{') {
        let at = text.len() - trimmed.len() + 1;
        let insert = format!("\"name\": {name:?}, ");
        let mut t = text.to_string();
        t.insert_str(at, &insert);
        (t, Shift::Cols(insert.chars().count()))
    } else {
        (format!("name: {name:?}\n{text}"), Shift::Line)
    }
}

/// How inserting the name moved the positions of the text.
#[derive(Clone, Copy)]
enum Shift {
    None,
    Line,
    Cols(usize),
}

impl Shift {
    fn back(self, p: Pos) -> Pos {
        match self {
            Shift::None => p,
            Shift::Line => Pos {
                line: p.line.saturating_sub(1).max(1),
                col: p.col,
            },
            Shift::Cols(n) if p.line == 1 && p.col > n => Pos {
                line: 1,
                col: p.col - n,
            },
            Shift::Cols(_) => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let text = "mqtt: {}\nmodels:\n  - name: coco\n    path: /nonexistent.onnx\nstreams:\n  - name: local\n    source: test://\n    model: coco\n";
        // Problems of the file itself (the model file is missing) are not
        // the camera's.
        serde_yaml::from_str(text).expect("base parses")
    }

    fn errors(text: &str) -> String {
        match parse_stream("etcd:/visiond/streams/cam1", "cam1", text, &base()) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn json_and_yaml_values_take_the_name_of_the_key() {
        let b = base();
        for text in [
            r#"{"source": "test://", "model": "coco", "fps": 2}"#,
            "source: test://\nmodel: coco\nfps: 2\n",
            "name: cam1\nsource: test://\nmodel: coco\nfps: 2\n",
        ] {
            let s = parse_stream("k", "cam1", text, &b).expect(text);
            assert_eq!((s.name.as_str(), s.fps), ("cam1", Some(2.0)));
        }
    }

    #[test]
    fn problems_name_the_key_line_and_field() {
        let e = errors("source: test://\nmodel: coco\nfpss: 2\n");
        assert!(
            e.starts_with("etcd:/visiond/streams/cam1:3:1: unknown key `fpss` in the stream entry; did you mean `fps`?"),
            "{e}"
        );
        let e = errors(r#"{"source": "test://", "model": "coco", "fps": 0}"#);
        assert!(e.starts_with("etcd:/visiond/streams/cam1:1:"), "{e}");
        assert!(e.contains("fps"), "{e}");
        let e = errors("source: test://\nmodel: nope\n");
        assert!(e.contains(":2:") && e.contains("nope"), "{e}");
        assert!(errors("name: other\nsource: test://\nmodel: coco\n").contains("differs"));
        assert!(errors("[1, 2]").starts_with("etcd:/visiond/streams/cam1:1:"));
        assert!(errors("{").starts_with("etcd:/visiond/streams/cam1:"));
    }

    #[test]
    fn a_camera_without_a_source_is_refused_and_problems_come_by_line() {
        let e = errors("model: coco\n");
        assert!(e.contains("source is missing"), "{e}");
        // Sorted by line, whatever order the checks ran in.
        let e = errors("source: test://\nmodel: nope\nfps: 0\n");
        let model = e.find("no model named").expect("the model");
        let fps = e.find("fps must be").expect("the fps");
        assert!(model < fps, "{e}");
    }

    #[test]
    fn a_camera_cannot_shadow_a_local_stream() {
        let e = parse_stream("k", "local", "source: test://\nmodel: coco\n", &base())
            .expect_err("shadowing");
        assert!(e.to_string().contains("rename one"), "{e}");
        assert!(parse_stream("k", "a/b", "source: test://\nmodel: coco\n", &base()).is_err());
    }
}
