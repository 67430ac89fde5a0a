//! Finds where a value sits in the YAML text, so that problems found after
//! deserialisation (a duplicate name, a missing file) can still be reported
//! as `FILE:LINE:COL`.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Self {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// Deeper documents are not located (see `Locator::new`).
const MAX_DEPTH: usize = 128;

/// Positions of every node of a YAML document, keyed by path:
/// `streams[1].model` (the value) and `streams[1].model:key` (its key).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Locator {
    positions: HashMap<String, Pos>,
    /// Every mapping key: (path of its mapping, key, position).
    keys: Vec<(String, String, Pos)>,
    /// Where the document goes deeper than [`MAX_DEPTH`]: not located further.
    too_deep: Option<Pos>,
}

impl Locator {
    pub fn new(text: &str) -> Self {
        let mut events = Vec::new();
        let mut parser = Parser::new_from_str(text);
        // A document that does not parse has been reported by serde_yaml
        // already; whatever was read up to the error still helps.
        while let Ok((event, marker)) = parser.next_token() {
            if event == Event::StreamEnd {
                break;
            }
            events.push((event, marker));
        }
        let mut locator = Locator::default();
        // walk() recurses per level, and libyaml (serde_yaml) takes time
        // quadratic in the depth of flow collections (minutes for 100000
        // `[`); serde_yaml refuses more than 128 levels anyway (yaml_rust2 stops at 255).
        let mut depth = 0usize;
        for (e, m) in &events {
            match e {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_DEPTH {
                locator.too_deep = Some(Pos::from_marker(m));
                return locator;
            }
        }
        if let Some(start) = events
            .iter()
            .position(|(e, _)| matches!(e, Event::DocumentStart))
        {
            locator.walk(&events, start + 1, String::new());
        }
        locator
    }

    /// Moves every position, e.g. from the `${VAR}`-substituted text back
    /// to the file as written.
    pub(crate) fn map_positions(&mut self, f: impl Fn(Pos) -> Pos) {
        for p in self.positions.values_mut() {
            *p = f(*p);
        }
        for (_, _, p) in &mut self.keys {
            *p = f(*p);
        }
        self.too_deep = self.too_deep.map(&f);
    }

    /// Where the document nests deeper than any config does (128 levels, as serde_yaml),
    /// if it does: such a document is refused before it is deserialised.
    pub fn too_deep(&self) -> Option<Pos> {
        self.too_deep
    }

    /// Every mapping key as (path of its mapping, key, position), in order.
    pub fn keys(&self) -> &[(String, String, Pos)] {
        &self.keys
    }

    /// Where the value at `path` starts.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.positions.get(path).copied()
    }

    /// Where the key of the mapping entry at `path` starts (the value's
    /// position for sequence items).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.positions
            .get(&format!("{path}:key"))
            .or_else(|| self.positions.get(path))
            .copied()
    }

    /// The value at `path`, else the closest enclosing node, else 1:1.
    pub fn nearest(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.value(p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Records the node starting at `events[i]` under `path`; returns the
    /// index after it.
    fn walk(&mut self, events: &[(Event, Marker)], i: usize, path: String) -> usize {
        let Some((event, marker)) = events.get(i) else {
            return i;
        };
        self.positions
            .insert(path.clone(), Pos::from_marker(marker));
        match event {
            Event::MappingStart(..) => {
                let mut j = i + 1;
                while let Some((ev, key_marker)) = events.get(j) {
                    if *ev == Event::MappingEnd {
                        return j + 1;
                    }
                    let key = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => String::from("?"),
                    };
                    let child = if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    self.positions
                        .insert(format!("{child}:key"), Pos::from_marker(key_marker));
                    if let Event::Scalar(k, ..) = ev {
                        self.keys
                            .push((path.clone(), k.clone(), Pos::from_marker(key_marker)));
                    }
                    if j == i + 1 {
                        // A block mapping starts where its first key does.
                        self.positions
                            .insert(path.clone(), Pos::from_marker(key_marker));
                    }
                    // Skip complex keys whole; only scalar keys are addressable.
                    j = if matches!(ev, Event::Scalar(..)) {
                        j + 1
                    } else {
                        self.walk(events, j, format!("{child}?"))
                    };
                    j = self.walk(events, j, child);
                }
                j
            }
            Event::SequenceStart(..) => {
                let mut j = i + 1;
                let mut n = 0;
                while let Some((ev, _)) = events.get(j) {
                    if *ev == Event::SequenceEnd {
                        return j + 1;
                    }
                    j = self.walk(events, j, format!("{path}[{n}]"));
                    n += 1;
                }
                j
            }
            _ => i + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_keys() {
        let text = "mqtt:\n  url: mqtt://x\nstreams:\n  - name: a\n    model: m\n  - name: b\n    model: n\n";
        let l = Locator::new(text);
        assert_eq!(l.value("mqtt.url"), Some(Pos { line: 2, col: 8 }));
        assert_eq!(l.key("streams[1].model"), Some(Pos { line: 7, col: 5 }));
        assert_eq!(l.value("streams[1].model"), Some(Pos { line: 7, col: 12 }));
        assert_eq!(l.nearest("streams[1].fps"), Pos { line: 6, col: 5 });
        assert_eq!(l.nearest("nothing.here"), Pos { line: 1, col: 1 });
    }

    #[test]
    fn survives_broken_yaml() {
        let l = Locator::new("a: 1\nb: [1, 2\nc: {");
        assert_eq!(l.value("a"), Some(Pos { line: 1, col: 4 }));
        assert_eq!(l.nearest("zzz"), Pos { line: 1, col: 1 });
    }
}
