//! `${VAR}` values from the environment, inserted as YAML scalars, never as
//! text: a value lands byte-exact as a string wherever `${VAR}` stands and
//! cannot change the document's structure (a `#`, `: ` or newline in a
//! password stays in the password).
//!
//! How: every `${VAR}` is masked with private-use characters of the same
//! length, so the masked text scans like the original and positions agree;
//! each scalar holding a mask is then re-emitted with the values in place,
//! as a double-quoted YAML string (or as the bare token when a whole plain
//! scalar is one `${VAR}` whose value is a number or boolean: `fps: ${FPS}`).
//! Only scalars are substituted; a `${VAR}` in a comment stays a comment.
//! [`Expanded::original`] maps positions in the result back to the file.

use yaml_rust2::scanner::{Marker, Scanner, TScalarStyle, Token, TokenType};

use super::Pos;

/// Starts the mask of one `${VAR}`; the rest of its length is [`MASK_REST`].
const MASK_START: char = '\u{E000}';
const MASK_REST: char = '\u{E001}';

/// The text with `${VAR}`s substituted, and how to find the original.
#[derive(Debug)]
pub(crate) struct Expanded {
    pub text: String,
    /// The substituted values: they may be secrets.
    pub values: Vec<String>,
    /// Problems (undefined variables, places no value can go), at their
    /// positions in the original text.
    pub problems: Vec<(Pos, String)>,
    map: SourceMap,
}

impl Expanded {
    /// Where a position of the substituted text was in the original.
    pub fn original(&self, pos: Pos) -> Pos {
        self.map.original(pos)
    }
}

/// One `${NAME}` in the original text, in chars.
#[derive(Debug)]
struct Var {
    start: usize,
    len: usize,
    name: String,
}

pub(crate) fn expand(text: &str, env: impl Fn(&str) -> Option<String>) -> Expanded {
    let chars: Vec<char> = text.chars().collect();
    let vars = find_vars(&chars);
    if vars.is_empty() {
        return Expanded {
            text: text.to_string(),
            values: Vec::new(),
            problems: Vec::new(),
            map: SourceMap::identity(&chars),
        };
    }
    let mut masked = chars.clone();
    for v in &vars {
        masked[v.start] = MASK_START;
        for c in &mut masked[v.start + 1..v.start + v.len] {
            *c = MASK_REST;
        }
    }
    let (tokens, scan_error) = scan(&masked);
    let mut x = Expander {
        vars: &vars,
        masked: &masked,
        lines: line_starts(chars.iter().copied()),
        env: &env,
        values: Vec::new(),
        problems: Vec::new(),
        edits: Vec::new(),
        used: vec![false; vars.len()],
    };
    for (i, Token(mark, token)) in tokens.iter().enumerate() {
        let TokenType::Scalar(style, cooked) = token else {
            continue;
        };
        // The next token bounds the scalar; without one its end is unknown.
        let Some(Token(next, _)) = tokens.get(i + 1) else {
            break;
        };
        let prev = i.checked_sub(1).and_then(|p| tokens.get(p)).map(|t| &t.0);
        x.scalar(*style, cooked, mark, prev, next);
    }
    // A `${VAR}` left in a part of the file that does not scan would stay
    // literal text if the other parser accepted it: say so instead.
    if let Some(err) = &scan_error
        && let Some(k) = (0..vars.len()).find(|&k| !x.used[k] && vars[k].start >= err.0.index())
    {
        x.problems.push((
            Pos {
                line: err.0.line(),
                col: err.0.col() + 1,
            },
            format!(
                "{} (so ${{{}}} further on cannot be substituted)",
                err.1, vars[k].name
            ),
        ));
    }
    let (text, map) = rewrite(&chars, &x.edits);
    Expanded {
        text,
        values: x.values,
        problems: x.problems,
        map,
    }
}

/// The substitution under way: the edits found so far and what went wrong.
struct Expander<'a, E> {
    vars: &'a [Var],
    masked: &'a [char],
    lines: Vec<usize>,
    env: &'a E,
    values: Vec<String>,
    problems: Vec<(Pos, String)>,
    /// (start, end, replacement) in chars of the original, in order.
    edits: Vec<(usize, usize, String)>,
    /// Which `vars` sit in a scalar that was looked at.
    used: Vec<bool>,
}

impl<E: Fn(&str) -> Option<String>> Expander<'_, E> {
    /// One scalar token (`cooked`: its value with the masks in it), between
    /// the tokens at `prev` and `next`: an edit where it holds `${VAR}`s.
    fn scalar(
        &mut self,
        style: TScalarStyle,
        cooked: &str,
        mark: &Marker,
        prev: Option<&Marker>,
        next: &Marker,
    ) {
        let masked = self.masked;
        let mut start = mark.index().min(masked.len());
        // A block scalar's token starts at its content; its `|` or `>` is
        // the first after the token before it (`:`, `-`, a tag, an anchor).
        if matches!(style, TScalarStyle::Literal | TScalarStyle::Folded)
            && let Some(prev) = prev
        {
            // (A `-` token's mark is after the `- `: it may be the `|`.)
            let from = prev.index().min(start);
            if let Some(n) = masked[from..start]
                .iter()
                .position(|&c| c == '|' || c == '>')
            {
                start = from + n;
            }
        }
        let bound = next.index().min(masked.len());
        let end = match style {
            TScalarStyle::Plain => plain_end(masked, start, bound, cooked),
            _ => Some(scalar_end(masked, style, start, bound)),
        };
        let Some(end) = end else {
            if self
                .vars
                .iter()
                .any(|v| v.start >= start && v.start < bound)
            {
                self.problem(start, "cannot substitute ${...} in this scalar".into());
            }
            return;
        };
        // `vars` is in order: those inside start at the first at or after `start`.
        let vars = self.vars;
        let first = vars.partition_point(|v| v.start < start);
        let inside: Vec<usize> = (first..vars.len())
            .take_while(|&k| vars[k].start + vars[k].len <= end)
            .collect();
        if inside.is_empty() {
            return;
        }
        for &k in &inside {
            self.used[k] = true;
        }
        let Some(value) = self.value(cooked, &inside, start) else {
            return;
        };
        // Spans found for broken YAML may overlap (a block scalar's up to
        // the next token); the file is refused then rather than rewritten.
        if self.edits.last().is_some_and(|e| start < e.1) || end < start {
            self.problem(
                start,
                "cannot substitute ${...} here: the YAML around it does not parse".into(),
            );
            return;
        }
        let whole = inside.len() == 1 && vars[inside[0]].start == start && {
            let v = &vars[inside[0]];
            v.start + v.len == end
        };
        let replacement = if style == TScalarStyle::Plain && whole && is_bare_token(&value) {
            value
        } else {
            quote(&value)
        };
        self.edits.push((start, end, replacement));
    }

    /// The scalar's value with the variables `inside` it in place of their
    /// masks; `None` (and the problem said) when one cannot be had.
    fn value(&mut self, cooked: &str, inside: &[usize], start: usize) -> Option<String> {
        let mut value = String::with_capacity(cooked.len());
        let mut pending = inside.iter().copied();
        let mut ok = true;
        for c in cooked.chars() {
            match c {
                MASK_START => match pending.next() {
                    Some(k) => match (self.env)(&self.vars[k].name) {
                        Some(v) => {
                            value.push_str(&v);
                            self.values.push(v);
                        }
                        None => {
                            ok = false;
                            let v = &self.vars[k];
                            self.problem(
                                v.start,
                                format!("environment variable {} is not set", v.name),
                            );
                        }
                    },
                    None => ok = false,
                },
                MASK_REST => {}
                c => value.push(c),
            }
        }
        if pending.next().is_some() {
            // The file itself holds a private-use character the masks use.
            self.problem(
                start,
                "cannot substitute ${...} here: U+E000 and U+E001 are reserved".into(),
            );
            return None;
        }
        ok.then_some(value)
    }

    fn problem(&mut self, at: usize, message: String) {
        self.problems.push((pos_in(&self.lines, at), message));
    }
}

/// The text with the edits made, and the map back to the original.
fn rewrite(chars: &[char], edits: &[(usize, usize, String)]) -> (String, SourceMap) {
    let mut out = String::with_capacity(chars.len());
    let mut map = SourceMap::identity(chars);
    let mut at = 0;
    let mut new_len = 0;
    for (start, end, replacement) in edits {
        out.extend(&chars[at..*start]);
        new_len += start - at;
        let n = replacement.chars().count();
        map.edits.push(Edit {
            orig: (*start, *end),
            new: (new_len, new_len + n),
        });
        out.push_str(replacement);
        new_len += n;
        at = *end;
    }
    out.extend(&chars[at..]);
    map.new_lines = line_starts(out.chars());
    (out, map)
}

/// Every `${NAME}` (closed on its line), in order.
fn find_vars(chars: &[char]) -> Vec<Var> {
    let mut vars = Vec::new();
    let mut i = 0;
    while i + 1 < chars.len() {
        if chars[i] == '$' && chars[i + 1] == '{' {
            let close = chars[i + 2..]
                .iter()
                .take_while(|&&c| c != '\n')
                .position(|&c| c == '}');
            if let Some(n) = close {
                vars.push(Var {
                    start: i,
                    len: n + 3,
                    name: chars[i + 2..i + 2 + n].iter().collect(),
                });
                i += n + 3;
                continue;
            }
        }
        i += 1;
    }
    vars
}

/// The tokens up to the first scan error, and that error (where, what).
fn scan(masked: &[char]) -> (Vec<Token>, Option<(Marker, String)>) {
    let mut scanner = Scanner::new(masked.iter().copied());
    let mut tokens = Vec::new();
    loop {
        match scanner.next_token() {
            Ok(Some(t)) => {
                let end = t.1 == TokenType::StreamEnd;
                tokens.push(t);
                if end {
                    return (tokens, None);
                }
            }
            Ok(None) => return (tokens, None),
            Err(e) => return (tokens, Some((*e.marker(), e.info().to_string()))),
        }
    }
}

/// Where a scalar starting at `start` ends, given that the next token
/// starts at `bound`.
fn scalar_end(chars: &[char], style: TScalarStyle, start: usize, bound: usize) -> usize {
    let bound = bound.max(start);
    match style {
        TScalarStyle::DoubleQuoted => {
            let mut i = start + 1;
            while i < bound {
                match chars[i] {
                    '\\' => i += 2,
                    '"' => return i + 1,
                    _ => i += 1,
                }
            }
            bound
        }
        TScalarStyle::SingleQuoted => {
            let mut i = start + 1;
            while i < bound {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            bound
        }
        // Up to the last line break before the next token: comments and
        // blank lines after the content go with it, the break stays.
        TScalarStyle::Literal | TScalarStyle::Folded => chars[start..bound]
            .iter()
            .rposition(|&c| c == '\n')
            .map_or(bound, |n| start + n),
        // Plain scalars: plain_end().
        _ => bound,
    }
}

/// Where a plain scalar starting at `start` ends: its raw text is its value
/// with line breaks and indentation folded, so walk both. (The next token's
/// mark is no bound: a `- ` entry's mark is after the `- `.) None if the
/// text does not give the value.
fn plain_end(chars: &[char], start: usize, bound: usize, cooked: &str) -> Option<usize> {
    let white = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let value: Vec<char> = cooked.chars().collect();
    let (mut i, mut j) = (start, 0);
    while j < value.len() {
        let c = *chars.get(i).filter(|_| i < bound.max(start))?;
        if white(value[j]) && white(c) {
            while j < value.len() && white(value[j]) {
                j += 1;
            }
            while i < chars.len() && white(chars[i]) {
                i += 1;
            }
        } else if c == value[j] {
            i += 1;
            j += 1;
        } else {
            return None;
        }
    }
    Some(i)
}

/// A value that may stand bare: YAML reads it as the same number or
/// boolean, and as the same text where a string is wanted.
fn is_bare_token(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'))
        && matches!(
            serde_yaml::from_str::<serde_yaml::Value>(v),
            Ok(serde_yaml::Value::Number(_) | serde_yaml::Value::Bool(_))
        )
}

/// A double-quoted YAML scalar whose value is exactly `v`: everything that
/// is not printable, or that a YAML reader folds or treats as a line break
/// (NEL, LS, PS), or a BOM, is escaped.
pub(crate) fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{d7ff}' if !matches!(c, '\u{2028}' | '\u{2029}') => out.push(c),
            '\u{e000}'..='\u{fffd}' if c != '\u{feff}' => out.push(c),
            '\u{10000}'.. => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// 1-based line and column of char `i` (columns count chars), given
/// where each line starts.
fn pos_in(lines: &[usize], i: usize) -> Pos {
    let line = lines.partition_point(|&s| s <= i).max(1);
    Pos {
        line,
        col: i - lines.get(line - 1).copied().unwrap_or(0) + 1,
    }
}

fn line_starts(chars: impl Iterator<Item = char>) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, c) in chars.enumerate() {
        if c == '\n' {
            starts.push(i + 1);
        }
    }
    starts
}

/// One re-emitted scalar: its char range in the original and in the result.
#[derive(Debug, Clone)]
struct Edit {
    orig: (usize, usize),
    new: (usize, usize),
}

#[derive(Debug, Clone)]
struct SourceMap {
    orig_lines: Vec<usize>,
    new_lines: Vec<usize>,
    edits: Vec<Edit>,
}

impl SourceMap {
    fn identity(chars: &[char]) -> Self {
        let lines = line_starts(chars.iter().copied());
        SourceMap {
            new_lines: lines.clone(),
            orig_lines: lines,
            edits: Vec::new(),
        }
    }

    /// A position inside a re-emitted scalar maps to the scalar's start.
    fn original(&self, pos: Pos) -> Pos {
        if self.edits.is_empty() {
            return pos;
        }
        let line_start = self
            .new_lines
            .get(pos.line.saturating_sub(1))
            .or(self.new_lines.last())
            .copied()
            .unwrap_or(0);
        let at = line_start + pos.col.saturating_sub(1);
        let mut orig = at;
        for e in &self.edits {
            if at < e.new.0 {
                break;
            }
            orig = if at < e.new.1 {
                e.orig.0
            } else {
                e.orig.1 + (at - e.new.1)
            };
        }
        pos_in(&self.orig_lines, orig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "PW" => Some("p#ss: w*rd &x".into()),
            "NL" => Some("a\nb: c\n- d".into()),
            "FPS" => Some("5".into()),
            "Q" => Some("it's \"q\" \\ \t\u{85}\u{2028}\u{feff}\u{1}".into()),
            _ => None,
        }
    }

    fn value_of(text: &str, key: &str) -> serde_yaml::Value {
        let e = expand(text, env);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        let doc: serde_yaml::Value = serde_yaml::from_str(&e.text).expect(&e.text);
        doc[key].clone()
    }

    #[test]
    fn values_are_scalars_not_text() {
        // Before: text substitution made each of these fail to parse or
        // grow keys.
        assert_eq!(value_of("a: ${PW}\n", "a"), "p#ss: w*rd &x");
        assert_eq!(value_of("a: ${NL}\nb: 1\n", "a"), "a\nb: c\n- d");
        assert_eq!(value_of("a: \"${NL}\"\n", "a"), "a\nb: c\n- d");
        assert_eq!(value_of("a: '${PW}'\n", "a"), "p#ss: w*rd &x");
        assert_eq!(value_of("a: ${Q}\n", "a"), env("Q").unwrap().as_str());
        assert_eq!(
            value_of("a: rtsp://u:${PW}@h/x  # c\n", "a"),
            "rtsp://u:p#ss: w*rd &x@h/x"
        );
        assert_eq!(value_of("{a: x${PW}y, b: 2}", "a"), "xp#ss: w*rd &xy");
        assert_eq!(
            value_of("a: |\n  1 ${NL}\n# c\nb: 2\n", "a"),
            "1 a\nb: c\n- d\n"
        );
        assert_eq!(value_of("a: ${FPS}\n", "a"), serde_yaml::Value::from(5));
        assert_eq!(value_of("a: \"${FPS}\"\n", "a"), "5");
        assert_eq!(value_of("a: ${PW}\r\nb: 1\r\n", "a"), "p#ss: w*rd &x");
        assert_eq!(value_of("a: !!str ${FPS}\n", "a"), "5");
        assert_eq!(value_of("a: [&x \"${PW}\", *x]\n", "a")[1], "p#ss: w*rd &x");
        assert_eq!(value_of("a:\n- &x ${PW}\n- *x\n", "a")[1], "p#ss: w*rd &x");
        assert_eq!(
            value_of("a:\n- |\n  ${PW}\n- 1\n", "a")[0],
            "p#ss: w*rd &x\n"
        );
        assert_eq!(value_of("a: x\n  y ${FPS}\n\n  z\nb: 1\n", "a"), "x y 5\nz");
        // Found by the property tests: overlapping spans in broken YAML.
        let e = expand("~|\n${PW} #|\n|\n${PW}", env);
        assert!(!e.problems.is_empty());
    }

    #[test]
    fn positions_map_back_to_the_original() {
        let text = "a: ${NL}\nb: ${PW} x ${NL}\nc: [1, 2]\n";
        let e = expand(text, env);
        let doc: serde_yaml::Value = serde_yaml::from_str(&e.text).unwrap();
        assert_eq!(doc["c"][1], serde_yaml::Value::from(2));
        let l = super::super::Locator::new(&e.text);
        let at = |p: &str| e.original(l.value(p).unwrap());
        assert_eq!(at("a"), Pos { line: 1, col: 4 });
        assert_eq!(at("b"), Pos { line: 2, col: 4 });
        assert_eq!(at("c[1]"), Pos { line: 3, col: 8 });
    }

    #[test]
    fn comments_are_left_alone_and_undefined_variables_located() {
        let e = expand("# ${NOPE}\na: x ${NOPE2} # ${NOPE3}\n", env);
        assert_eq!(
            e.problems,
            vec![(
                Pos { line: 2, col: 6 },
                "environment variable NOPE2 is not set".to_string()
            )]
        );
    }
}
