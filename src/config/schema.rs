//! The JSON Schema of the config, generated from the types (schemars; doc
//! comments become descriptions) and committed as
//! docs/schema/config.schema.json. The same schema names the keys each
//! mapping takes, for "did you mean" on unknown keys.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::{Config, ModelDescription};

/// Where a number or boolean is wanted, a whole `${VAR}` is valid too: it
/// is read as YAML reads a bare value (`fps: ${FPS}`).
const ENV_VAR: &str = "EnvVar";

/// docs/schema/config.schema.json, as the types generate it.
pub fn schema() -> String {
    let mut text = serde_json::to_string_pretty(config()).unwrap_or_default();
    text.push('\n');
    text
}

/// The config's schema.
pub(crate) fn config() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| generate(schemars::schema_for!(Config)))
}

/// A model description file's schema (`description:`).
pub(crate) fn description() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| generate(schemars::schema_for!(ModelDescription)))
}

fn generate(schema: schemars::Schema) -> Value {
    let mut v = schema.to_value();
    accept_env_vars(&mut v);
    // schemars knows no serde aliases (`colour`'s is added on InputConfig).
    if let Some(modes) = v
        .pointer_mut("/$defs/ResizeMode/oneOf")
        .and_then(Value::as_array_mut)
    {
        modes.push(json!({ "const": "center-crop", "description": "Same as centre-crop.", "type": "string" }));
    }
    if let Some(defs) = v.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.insert(
            ENV_VAR.into(),
            json!({
                "description": "`${VAR}`: the environment variable's value, read as YAML reads a bare value",
                "type": "string",
                "pattern": "^\\$\\{[^}\\n]+\\}$"
            }),
        );
    }
    v
}

/// Wraps every number, integer or boolean schema as `anyOf [it, EnvVar]`.
fn accept_env_vars(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for child in o.values_mut() {
                accept_env_vars(child);
            }
            let scalar = |t: &Value| matches!(t.as_str(), Some("number" | "integer" | "boolean"));
            let wanted = match o.get("type") {
                Some(Value::Array(ts)) => ts.iter().any(scalar),
                Some(t) => scalar(t),
                None => false,
            };
            if wanted {
                let mut inner = std::mem::take(o);
                let mut outer = Map::new();
                if let Some(d) = inner.remove("description") {
                    outer.insert("description".into(), d);
                }
                outer.insert(
                    "anyOf".into(),
                    json!([inner, { "$ref": format!("#/$defs/{ENV_VAR}") }]),
                );
                *o = outer;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(accept_env_vars),
        _ => {}
    }
}

/// The keys the mapping at `path` (`streams[0].options`) takes.
pub(crate) fn known_keys(root: &Value, path: &str) -> Vec<String> {
    let mut nodes = alternatives(root, root);
    for segment in segments(path) {
        let next: Vec<&Value> = nodes
            .iter()
            .filter_map(|n| match &segment {
                Segment::Key(k) => n.get("properties").and_then(|p| p.get(k.as_str())),
                Segment::Index => n.get("items"),
            })
            .collect();
        nodes = next
            .into_iter()
            .flat_map(|n| alternatives(root, n))
            .collect();
    }
    let mut keys: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.get("properties").and_then(Value::as_object))
        .flat_map(|p| p.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

enum Segment {
    Key(String),
    Index,
}

/// `streams[0].options` -> streams, [], options.
fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !name.is_empty() {
            out.push(Segment::Key(name.to_string()));
        }
        out.extend(rest.matches('[').map(|_| Segment::Index));
    }
    out
}

/// `node` with its `$ref`s followed and `anyOf`/`oneOf`/`allOf` flattened.
fn alternatives<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    fn walk<'a>(root: &'a Value, node: &'a Value, depth: usize, out: &mut Vec<&'a Value>) {
        // The config's types do not recurse; the bound only guards a
        // hand-edited schema.
        if depth > 16 {
            return;
        }
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix("#/$defs/")
                .and_then(|name| root.get("$defs").and_then(|d| d.get(name)));
            if let Some(t) = target {
                walk(root, t, depth + 1, out);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(list) = node.get(key).and_then(Value::as_array) {
                for n in list {
                    walk(root, n, depth + 1, out);
                }
            }
        }
        out.push(node);
    }
    let mut out = Vec::new();
    walk(root, node, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    const COMMITTED: &str = "docs/schema/config.schema.json";

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// `VISIOND_BLESS=1 cargo test --lib config::schema` writes the file.
    #[test]
    fn the_committed_schema_is_what_the_types_generate() {
        let path = repo().join(COMMITTED);
        let generated = schema();
        if std::env::var_os("VISIOND_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write the schema");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{COMMITTED} differs from what the config types generate; \
             regenerate it with: VISIOND_BLESS=1 cargo test --lib config::schema"
        );
    }

    fn validate(schema: &Value, file: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(file).expect("read");
        let doc: Value = serde_yaml::from_str(&text).expect("YAML");
        let validator = jsonschema::validator_for(schema).expect("a valid schema");
        validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {} at {}", file.display(), e, e.instance_path()))
            .collect()
    }

    fn yaml_files(dir: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .expect(dir)
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_shipped_configs_match_the_schema() {
        let mut configs = yaml_files("pipelines");
        configs.push(repo().join("packaging/visiond.yaml"));
        let mut errors: Vec<String> = configs.iter().flat_map(|f| validate(config(), f)).collect();
        let descriptions = yaml_files("models");
        assert!(!descriptions.is_empty());
        errors.extend(descriptions.iter().flat_map(|f| validate(description(), f)));
        assert!(configs.len() >= 3);
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn the_schema_rejects_what_the_loader_rejects_and_takes_env_vars() {
        let v = jsonschema::validator_for(config()).expect("valid schema");
        let ok = json!({"mqtt": {"password": "${PW}", "qos": "${QOS}"},
                        "streams": [{"name": "a", "model": "m", "fps": "${FPS}",
                                     "options": {"latency_ms": 5}}],
                        "models": [{"name": "m", "path": "m.onnx",
                                    "input": {"color": "bgr", "resize": "center-crop"}}]});
        assert!(v.is_valid(&ok), "{:?}", v.iter_errors(&ok).next());
        for bad in [
            json!({"mqtt": {"prefx": "x"}}),
            json!({"mqtt": {}, "streams": [{"name": "a", "model": "m", "options": {"latency": 5}}]}),
            json!({"mqtt": {}, "streams": [{"name": "a", "model": "m", "fps": "fast"}]}),
        ] {
            assert!(!v.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn known_keys_follow_the_types() {
        let keys = known_keys(config(), "streams[3].options");
        assert!(keys.contains(&"latency_ms".to_string()), "{keys:?}");
        assert!(known_keys(config(), "").contains(&"mqtt".to_string()));
        assert!(known_keys(config(), "models[0].input").contains(&"colour".to_string()));
        assert!(known_keys(config(), "http").contains(&"grace".to_string()));
        assert!(known_keys(config(), "nothing.here").is_empty());
    }
}
