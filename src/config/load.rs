//! Reading a config: `${VAR}` values, YAML into the types, every unknown
//! key (as serde sees them), relative paths resolved, secrets collected.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{ConfigError, Loaded, Locator, ModelConfig, ModelDescription, Pos, Problem};
use super::{env, schema, validate};

pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let text = read(file)?;
    parse(file, &text, |k| std::env::var(k).ok())
}

/// As [`load`], for `visiond check`: every problem of the file at once,
/// sorted by position, beside the config as far as it could be read (its
/// types whole, even where values are wrong), so that checks which need
/// more (the models' labels) can still run.
pub fn load_all(file: &Path) -> Result<(Option<Loaded>, Vec<Problem>), ConfigError> {
    let text = read(file)?;
    Ok(parse_all(file, &text, |k| std::env::var(k).ok()))
}

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })
}

/// Parses and validates `text` as if read from `file`; `env` looks up `${VAR}`s.
pub fn parse(
    file: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    match parse_all(file, text, env) {
        (Some(loaded), problems) if problems.is_empty() => Ok(loaded),
        (_, problems) => Err(ConfigError::Invalid { problems }),
    }
}

fn parse_all(
    file: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> (Option<Loaded>, Vec<Problem>) {
    let expanded = env::expand(text, env);
    let values: Vec<String> = expanded
        .values
        .iter()
        .filter(|v| v.len() >= 3)
        .cloned()
        .collect();
    let (loaded, mut problems) = parse_expanded(file, expanded);
    // The secrets are not registered yet when loading fails, and serde
    // quotes the values it refuses ("invalid type: string ...").
    for p in &mut problems {
        for v in &values {
            p.message = p.message.replace(v.as_str(), "***");
        }
    }
    problems.sort_by_key(|p| (p.pos.line, p.pos.col));
    (loaded, problems)
}

/// The config as far as it could be read, and every problem found.
fn parse_expanded(file: &Path, expanded: env::Expanded) -> (Option<Loaded>, Vec<Problem>) {
    // Every position below is found in the substituted text; users read
    // the file they wrote.
    let problem = |pos: Pos, message: String| Problem {
        file: file.to_path_buf(),
        pos: expanded.original(pos),
        message,
    };
    if !expanded.problems.is_empty() {
        let problems = expanded
            .problems
            .iter()
            .map(|(pos, m)| Problem {
                file: file.to_path_buf(),
                pos: *pos,
                message: m.clone(),
            })
            .collect();
        return (None, problems);
    }
    let text = &expanded.text;
    let mut locator = Locator::new(text);

    let (parsed, unknown) = deserialize::<super::Config>(text, &locator, schema::config(), "");
    let mut problems: Vec<Problem> = unknown.into_iter().map(|(p, m)| problem(p, m)).collect();
    // Unknown keys do not stop the checks below: serde read the rest.
    let mut config = match parsed {
        Ok(c) => c,
        Err((pos, message)) => {
            problems.push(problem(pos, message));
            return (None, problems);
        }
    };

    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Problems found after parsing, at config paths.
    let mut late = Vec::new();
    read_files(&mut config, base, &mut late);

    let found: Vec<(String, String)> = late
        .into_iter()
        .chain(validate::validate(&config))
        .collect();
    keep_sound_models(&mut config, &found);
    problems.extend(
        found
            .into_iter()
            .map(|(path, m)| problem(locator.nearest(&path), m)),
    );

    let secrets = secrets(&config, &expanded.values);
    let node = config
        .node
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let client_id = config
        .mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("visiond-{node}"));
    locator.map_positions(|p| expanded.original(p));
    let loaded = Loaded {
        file: file.to_path_buf(),
        config,
        node,
        client_id,
        secrets,
        locator,
    };
    (Some(loaded), problems)
}

/// The partial config keeps only the models with no problem of their own
/// (`found`: path, message): `check` loads those, and a bound that failed
/// (threads: 1e9) must not reach ONNX Runtime.
fn keep_sound_models(config: &mut super::Config, found: &[(String, String)]) {
    let mut i = 0;
    config.models.retain(|_| {
        let entry = format!("models[{i}]");
        i += 1;
        !found.iter().any(|(path, _)| {
            path.strip_prefix(&entry)
                .is_some_and(|r| r.is_empty() || r.starts_with('.'))
        })
    });
}

/// Paths made relative to the config file's folder `base`, and the files
/// the config points to read (model descriptions, passwords, the page's
/// users and certificates); their problems go to `late`.
fn read_files(config: &mut super::Config, base: &Path, late: &mut Vec<(String, String)>) {
    for (i, m) in config.models.iter_mut().enumerate() {
        m.path = base.join(&m.path);
        if let Some(l) = &mut m.labels {
            *l = base.join(&*l);
        }
        if let Some(d) = &mut m.description {
            *d = base.join(&*d);
        }
        for v in &mut m.variants {
            v.path = base.join(&v.path);
        }
        for e in describe_model(m) {
            late.push((format!("models[{i}].description"), e));
        }
    }
    for p in [
        &mut config.onnxruntime,
        &mut config.mqtt.spool,
        &mut config.mqtt.ca_file,
        &mut config.mqtt.cert_file,
        &mut config.mqtt.key_file,
    ]
    .into_iter()
    .chain(
        config
            .cluster
            .iter_mut()
            .flat_map(|c| [&mut c.ca_file, &mut c.cert_file, &mut c.key_file]),
    )
    .flatten()
    {
        *p = base.join(&*p);
    }
    if let Some(f) = &mut config.mqtt.password_file {
        *f = base.join(&*f);
        match std::fs::read_to_string(&*f) {
            Ok(text) if config.mqtt.password.is_none() => {
                config.mqtt.password = Some(text.lines().next().unwrap_or("").to_string());
            }
            Ok(_) => late.push((
                "mqtt.password_file".into(),
                "give password or password_file, not both".into(),
            )),
            Err(e) => late.push((
                "mqtt.password_file".into(),
                format!("cannot read {}: {e}", f.display()),
            )),
        }
    }

    if let Some(h) = &mut config.http {
        read_http_files(h, base, late);
    }
}

/// The values that must never reach a log: substituted variables, the
/// broker's password, the metrics token, passwords in camera URLs.
fn secrets(config: &super::Config, substituted: &[String]) -> Vec<String> {
    let mut secrets = substituted.to_vec();
    if let Some(p) = &config.mqtt.password {
        secrets.push(p.clone());
    }
    if let Some(t) = config.http.as_ref().and_then(|h| h.metrics_token.as_ref()) {
        secrets.push(t.clone());
    }
    for s in &config.streams {
        if let Ok(url) = url::Url::parse(&s.source_text())
            && let Some(p) = url.password()
        {
            secrets.push(p.to_string());
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// A message and where it belongs.
pub(super) type Located = (Pos, String);

/// Deserialises `text`, collecting every key serde ignored (an unknown
/// key: no struct of the config takes it) with its position and a
/// suggestion from `schema` (where `text` sits at the path `under` of it).
/// serde stops at the first real error; unknown keys before it are
/// reported with it.
pub(super) fn deserialize<T: DeserializeOwned>(
    text: &str,
    locator: &Locator,
    schema: &serde_json::Value,
    under: &str,
) -> (Result<T, Located>, Vec<Located>) {
    if let Some(pos) = locator.too_deep().or_else(|| flow_too_deep(text)) {
        let message = "nested deeper than 128 levels".to_string();
        return (Err((pos, message)), Vec::new());
    }
    let mut unknown = Vec::new();
    let de = serde_yaml::Deserializer::from_str(text);
    let parsed = serde_ignored::deserialize(de, |path| {
        let (parent, key) = split_path(&path);
        let full = if parent.is_empty() {
            key.clone()
        } else {
            format!("{parent}.{key}")
        };
        let pos = locator.key(&full).unwrap_or_else(|| locator.nearest(&full));
        let in_schema = match (under, parent.as_str()) {
            ("", p) => p.to_string(),
            (u, "") => u.to_string(),
            (u, p) => format!("{u}.{p}"),
        };
        unknown.push((pos, unknown_key_message(&in_schema, &key, schema)));
    });
    let parsed = parsed.map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                col: l.column(),
            })
            .unwrap_or(Pos { line: 1, col: 1 });
        (pos, clean_serde_message(&e.to_string()))
    });
    unknown.sort_by_key(|(p, _)| (p.line, p.col));
    (parsed, unknown)
}

/// Where `[`/`{` nest deeper than 128, counted roughly (outside comments
/// and double quotes): libyaml takes time quadratic in that depth, and the
/// locator's parser may have stopped before it for another reason.
fn flow_too_deep(text: &str) -> Option<Pos> {
    let (mut depth, mut line, mut col) = (0usize, 1, 0);
    let (mut quoted, mut comment, mut escaped, mut prev) = (false, false, false, '\n');
    for c in text.chars() {
        col += 1;
        match c {
            '\n' => {
                (line, col, comment) = (line + 1, 0, false);
            }
            _ if comment => {}
            _ if quoted => match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            },
            '"' => quoted = true,
            '#' if prev.is_whitespace() => comment = true,
            '[' | '{' => {
                depth += 1;
                if depth > 128 {
                    return Some(Pos { line, col });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    None
}

/// serde_ignored's path as the locator writes it: (`streams[0].options`, `latency`).
fn split_path(path: &serde_ignored::Path) -> (String, String) {
    fn render(p: &serde_ignored::Path) -> String {
        use serde_ignored::Path as P;
        match p {
            P::Root => String::new(),
            P::Seq { parent, index } => format!("{}[{index}]", render(parent)),
            P::Map { parent, key } => match render(parent) {
                s if s.is_empty() => key.clone(),
                s => format!("{s}.{key}"),
            },
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                render(parent)
            }
        }
    }
    match path {
        serde_ignored::Path::Map { parent, key } => (render(parent), key.clone()),
        other => (render(other), String::from("?")),
    }
}

fn unknown_key_message(parent: &str, key: &str, schema: &serde_json::Value) -> String {
    let place = if parent.is_empty() {
        "the top level".to_string()
    } else {
        parent.to_string()
    };
    let known = schema::known_keys(schema, parent);
    let closest = known
        .iter()
        .map(|k| (strsim::jaro_winkler(k, key), k))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.8);
    match closest {
        Some((_, k)) => format!("unknown key `{key}` in {place}; did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown key `{key}` in {place}"),
        None => format!(
            "unknown key `{key}` in {place}; known: {}",
            known.join(", ")
        ),
    }
}

/// Merges a description file into a model entry; the entry wins. Returns
/// the problems of the file, each naming it with its own position.
fn describe_model(m: &mut ModelConfig) -> Vec<String> {
    let Some(file) = m.description.clone() else {
        return Vec::new();
    };
    let at = |pos: Pos, message: String| {
        format!(
            "model {:?}: description {}:{}:{}: {message}",
            m.name,
            file.display(),
            pos.line,
            pos.col
        )
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            return vec![format!(
                "model {:?}: description {}: {e}",
                m.name,
                file.display()
            )];
        }
    };
    let locator = Locator::new(&text);
    let (parsed, unknown) =
        deserialize::<ModelDescription>(&text, &locator, schema::description(), "");
    let mut problems: Vec<String> = unknown.into_iter().map(|(p, m)| at(p, m)).collect();
    let d = match parsed {
        Ok(d) => d,
        Err((pos, message)) => {
            problems.push(at(pos, message));
            return problems;
        }
    };
    if !problems.is_empty() {
        return problems;
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    m.task = m.task.or(d.task);
    m.labels = m.labels.take().or_else(|| d.labels.map(|l| dir.join(l)));
    m.top_k = m.top_k.or(d.top_k);
    m.iou = m.iou.or(d.iou);
    m.input = std::mem::take(&mut m.input).or(d.input);
    m.output = std::mem::take(&mut m.output).or(d.output);
    Vec::new()
}

/// serde_yaml appends " at line L column C" to its messages; the position is
/// printed in front already.
fn clean_serde_message(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// `http:`'s files, read now: the users' hash files and the metrics token's
/// file into their values (one or the other, not both), and the TLS
/// certificate and key, so that a renewed certificate is a changed config.
fn read_http_files(h: &mut super::HttpConfig, base: &Path, late: &mut Vec<(String, String)>) {
    let first_line = |f: &Path| {
        std::fs::read_to_string(f)
            .map(|text| text.lines().next().unwrap_or("").trim().to_string())
            .map_err(|e| format!("cannot read {}: {e}", f.display()))
    };
    for (i, u) in h.users.iter_mut().enumerate() {
        let Some(f) = &mut u.password_hash_file else {
            continue;
        };
        *f = base.join(&*f);
        let at = format!("http.users[{i}].password_hash_file");
        match first_line(f) {
            Ok(hash) if u.password_hash.is_none() => u.password_hash = Some(hash),
            Ok(_) => late.push((
                at,
                "give password_hash or password_hash_file, not both".into(),
            )),
            Err(e) => late.push((at, e)),
        }
    }
    if let Some(f) = &mut h.metrics_token_file {
        *f = base.join(&*f);
        match first_line(f) {
            Ok(t) if h.metrics_token.is_none() => h.metrics_token = Some(t),
            Ok(_) => late.push((
                "http.metrics_token_file".into(),
                "give metrics_token or metrics_token_file, not both".into(),
            )),
            Err(e) => late.push(("http.metrics_token_file".into(), e)),
        }
    }
    if let Some(tls) = &mut h.tls {
        tls.cert = base.join(&tls.cert);
        tls.key = base.join(&tls.key);
        for (field, file, into) in [
            ("cert", &tls.cert, &mut tls.pem.cert),
            ("key", &tls.key, &mut tls.pem.key),
        ] {
            match std::fs::read(file) {
                Ok(bytes) => *into = bytes,
                Err(e) => late.push((
                    format!("http.tls.{field}"),
                    format!("cannot read {}: {e}", file.display()),
                )),
            }
        }
    }
}
