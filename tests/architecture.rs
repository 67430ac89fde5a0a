//! The layout's rules, checked on the source itself: no import circle
//! between files or between the top-level modules (folders), no file over
//! 600 lines, no function over 80 lines without a comment that says why.
//!
//! A reference is resolved to the file that defines the name (not the
//! `mod.rs` that re-exports it), so a parent re-exporting its children is
//! no circle, and a child using its parent's own items is a dependency.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::visit::Visit;

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;
/// A comment saying why a function is longer, on one of its first lines.
const LONG_REASON: &str = "Long:";

struct File {
    /// `a/b.rs` under `src/`.
    rel: String,
    /// The module path: `["a", "b"]`.
    module: Vec<String>,
    text: String,
    ast: syn::File,
}

fn is_test_file(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == "tests.rs" || name.ends_with("_tests.rs") || rel.contains("/tests/")
}

fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn sources() -> Vec<File> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("src is readable") {
            let p: PathBuf = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                paths.push(p);
            }
        }
    }
    let mut files: Vec<File> = paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("readable");
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
            File {
                module: module_of(&rel),
                rel,
                text,
                ast,
            }
        })
        .filter(|f| !is_test_file(&f.rel))
        .collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

/// The library's files: main.rs, the binary, is its own crate on top.
fn library() -> Vec<File> {
    sources()
        .into_iter()
        .filter(|f| f.rel != "main.rs")
        .collect()
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// The names a file defines at its top level (test code left out).
fn definitions(ast: &syn::File) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for item in &ast.items {
        let name = match item {
            syn::Item::Struct(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Enum(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Trait(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Fn(i) if !is_cfg_test(&i.attrs) => Some(&i.sig.ident),
            syn::Item::Type(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Const(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Static(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Union(i) if !is_cfg_test(&i.attrs) => Some(&i.ident),
            syn::Item::Macro(i) => i.ident.as_ref(),
            _ => None,
        };
        out.extend(name.map(|n| n.to_string()));
    }
    out
}

/// Every path a file names that starts at `crate`, `super` or `self`,
/// from its `use` items and its code (test code left out).
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push(prefix, &n.ident.to_string()),
            syn::UseTree::Rename(r) => self.push(prefix, &r.ident.to_string()),
            syn::UseTree::Glob(_) => self.push(prefix, "*"),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    fn push(&mut self, prefix: &[String], last: &str) {
        let mut p = prefix.to_vec();
        if last != "self" {
            p.push(last.to_string());
        }
        // Relative paths too (`use child::X`): the resolver keeps those
        // that start at a module of the crate.
        self.0.push(p);
    }
}

impl<'a> Visit<'a> for Paths {
    fn visit_item(&mut self, i: &'a syn::Item) {
        let attrs = match i {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(m) => &m.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => &Vec::new(),
        };
        if is_cfg_test(attrs) {
            return;
        }
        if let syn::Item::Use(u) = i {
            // A `pub use` re-exports: the module hands a name on, it does
            // not use it.
            if matches!(u.vis, syn::Visibility::Inherited) {
                self.use_tree(&mut Vec::new(), &u.tree);
            }
            return;
        }
        syn::visit::visit_item(self, i);
    }

    fn visit_path(&mut self, p: &'a syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            self.0.push(segs);
        }
        syn::visit::visit_path(self, p);
    }
}

struct Index<'a> {
    files: &'a [File],
    by_module: HashMap<Vec<String>, usize>,
    defs: Vec<BTreeSet<String>>,
}

impl Index<'_> {
    /// The files `path`, named in file `from`, depends on.
    fn resolve(&self, from: usize, path: &[String]) -> BTreeSet<usize> {
        let mut base = self.files[from].module.clone();
        let mut rest = path;
        match path.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &path[1..];
            }
            Some("self") => rest = &path[1..],
            Some("super") => {
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            // A relative path counts when it starts at a child module;
            // others name other crates, std, types or variants.
            Some(first) => {
                let mut child = base.clone();
                child.push(first.to_string());
                if !self.by_module.contains_key(&child) {
                    return BTreeSet::new();
                }
            }
            None => return BTreeSet::new(),
        }
        while let Some(seg) = rest.first() {
            let mut next = base.clone();
            next.push(seg.clone());
            if !self.by_module.contains_key(&next) {
                break;
            }
            base = next;
            rest = &rest[1..];
        }
        let here = self.by_module.get(&base).copied();
        let Some(name) = rest.first() else {
            return here.into_iter().collect();
        };
        let defined: BTreeSet<usize> = (0..self.files.len())
            .filter(|&i| self.files[i].module.starts_with(&base) && self.defs[i].contains(name))
            .collect();
        if defined.is_empty() {
            here.into_iter().collect()
        } else {
            defined
        }
    }
}

fn graph(files: &[File]) -> Vec<BTreeSet<usize>> {
    let index = Index {
        files,
        by_module: files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect(),
        defs: files.iter().map(|f| definitions(&f.ast)).collect(),
    };
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut paths = Paths::default();
            paths.visit_file(&f.ast);
            let mut to = BTreeSet::new();
            for p in &paths.0 {
                to.extend(index.resolve(i, p));
            }
            to.remove(&i);
            to
        })
        .collect()
}

/// The strongly connected components with more than one node (Tarjan).
fn circles(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct T<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on: Vec<bool>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T<'_>, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in t.edges[v].iter() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let n = edges.len();
    let mut t = T {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on: vec![false; n],
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out
}

fn describe(names: &[String], edges: &[BTreeSet<usize>], comp: &[usize]) -> String {
    let mut lines = Vec::new();
    for &a in comp {
        for &b in &edges[a] {
            if comp.contains(&b) {
                lines.push(format!("  {} -> {}", names[a], names[b]));
            }
        }
    }
    lines.sort();
    lines.join("\n")
}

#[test]
fn no_file_imports_in_a_circle() {
    let files = library();
    let edges = graph(&files);
    let names: Vec<String> = files.iter().map(|f| f.rel.clone()).collect();
    // lib.rs declares every module; it is the root, not a dependency.
    let without_root: Vec<BTreeSet<usize>> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if names[i] == "lib.rs" {
                BTreeSet::new()
            } else {
                e.clone()
            }
        })
        .collect();
    let found: Vec<String> = circles(&without_root)
        .iter()
        .map(|c| describe(&names, &without_root, c))
        .collect();
    assert!(
        found.is_empty(),
        "import circles between files:\n{}",
        found.join("\n\n")
    );
    assert!(
        edges.iter().map(BTreeSet::len).sum::<usize>() > files.len(),
        "the resolver found almost no dependencies: it is broken"
    );
}

#[test]
fn no_folder_imports_in_a_circle() {
    let files = library();
    let edges = graph(&files);
    let top = |f: &File| f.module.first().cloned().unwrap_or_default();
    let folders: Vec<String> = files
        .iter()
        .map(top)
        .filter(|t| !t.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let at: BTreeMap<&String, usize> = folders.iter().enumerate().map(|(i, f)| (f, i)).collect();
    let mut fedges = vec![BTreeSet::new(); folders.len()];
    for (i, to) in edges.iter().enumerate() {
        let Some(&a) = at.get(&top(&files[i])) else {
            continue;
        };
        for &j in to {
            if let Some(&b) = at.get(&top(&files[j]))
                && a != b
            {
                fedges[a].insert(b);
            }
        }
    }
    let found: Vec<String> = circles(&fedges)
        .iter()
        .map(|c| describe(&folders, &fedges, c))
        .collect();
    assert!(
        found.is_empty(),
        "import circles between folders:\n{}",
        found.join("\n\n")
    );
}

/// The layers, bottom up (README's Layout): a folder uses only its own
/// layer's and the ones below.
const LAYERS: [&[&str]; 3] = [
    // The core every layer shares.
    &[
        "frame", "clock", "stats", "limits", "sync", "status", "password", "tls", "backoff",
        "redact", "notify",
    ],
    // The data plane.
    &[
        "source",
        "inference",
        "motion",
        "route",
        "tracking",
        "cascade",
        "snapshot",
        "render",
        "publish",
    ],
    // The daemon and its tools.
    &[
        "config",
        "daemon",
        "fleet",
        "http",
        "page",
        "homeassistant",
        "bench",
        "evaluate",
    ],
];

#[test]
fn no_folder_uses_a_layer_above_its_own() {
    let files = library();
    let edges = graph(&files);
    let layer = |f: &File| {
        let top = f.module.first().map(String::as_str).unwrap_or_default();
        LAYERS.iter().position(|l| l.contains(&top))
    };
    let mut upward = BTreeSet::new();
    for (i, to) in edges.iter().enumerate() {
        let from = &files[i];
        if from.module.is_empty() {
            continue;
        }
        let Some(a) = layer(from) else {
            panic!("{}: its folder is in no layer of LAYERS", from.rel);
        };
        for &j in to {
            if layer(&files[j]).is_some_and(|b| b > a) {
                upward.insert(format!("{} -> {}", from.rel, files[j].rel));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "uses of a layer above:\n{}",
        upward.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_resolver_sees_a_circle_when_there_is_one() {
    // Two files naming each other's items, as a regression in src/ would.
    let a = syn::parse_file("use super::b::B; pub struct A;").expect("a");
    let b = syn::parse_file("pub struct B(crate::m::a::A);").expect("b");
    let files = vec![
        File {
            rel: "m/mod.rs".into(),
            module: module_of("m/mod.rs"),
            text: String::new(),
            ast: syn::parse_file("mod a; mod b;").expect("mod"),
        },
        File {
            rel: "m/a.rs".into(),
            module: module_of("m/a.rs"),
            text: String::new(),
            ast: a,
        },
        File {
            rel: "m/b.rs".into(),
            module: module_of("m/b.rs"),
            text: String::new(),
            ast: b,
        },
    ];
    let edges = graph(&files);
    let mut found = circles(&edges);
    found.iter_mut().for_each(|c| c.sort());
    assert_eq!(found, vec![vec![1, 2]]);
    // A parent using its child, which uses the parent's own item: a circle
    // too; a parent re-exporting its child is none.
    let file = |rel: &str, code: &str| File {
        rel: rel.into(),
        module: module_of(rel),
        text: String::new(),
        ast: syn::parse_file(code).expect("parses"),
    };
    let child = "use super::Shared; pub struct C(Shared);";
    let using = vec![
        file(
            "p/mod.rs",
            "mod c; use c::C; pub struct Shared; pub fn f(_: C) {}",
        ),
        file("p/c.rs", child),
    ];
    assert_eq!(circles(&graph(&using)).len(), 1);
    let reexporting = vec![
        file("p/mod.rs", "mod c; pub use c::C; pub struct Shared;"),
        file("p/c.rs", child),
    ];
    assert!(circles(&graph(&reexporting)).is_empty());
}

#[test]
fn no_file_is_over_600_lines() {
    let long: Vec<String> = sources()
        .iter()
        .map(|f| (f.text.lines().count(), &f.rel))
        .filter(|(n, _)| *n > MAX_FILE_LINES)
        .map(|(n, rel)| format!("{rel}: {n} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// Functions (free and in impls): name, first line of the signature, the
/// body's first and last line, the doc comment.
#[derive(Default)]
struct Functions(Vec<(String, usize, usize, usize, String)>);

impl Functions {
    fn push(&mut self, attrs: &[syn::Attribute], sig: &syn::Signature, block: &syn::Block) {
        let doc: Vec<String> = attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .map(quote_doc)
            .collect();
        let span = block.span();
        self.0.push((
            sig.ident.to_string(),
            sig.span().start().line,
            span.start().line,
            span.end().line,
            doc.join("\n"),
        ));
    }
}

fn quote_doc(a: &syn::Attribute) -> String {
    match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s.value(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

impl<'a> Visit<'a> for Functions {
    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
        self.push(&f.attrs, &f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }

    fn visit_impl_item_fn(&mut self, f: &'a syn::ImplItemFn) {
        self.push(&f.attrs, &f.sig, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'a syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.push(&f.attrs, &f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_function_is_over_80_lines_without_a_reason() {
    let mut long = Vec::new();
    for f in sources() {
        let mut fns = Functions::default();
        fns.visit_file(&f.ast);
        let lines: Vec<&str> = f.text.lines().collect();
        for (name, sig, start, end, doc) in fns.0 {
            let n = end + 1 - start;
            // The reason sits in the doc comment or the body's first lines.
            let head = lines[sig.saturating_sub(1)..(start + 2).min(lines.len())].join("\n");
            if n > MAX_FN_LINES && !doc.contains(LONG_REASON) && !head.contains(LONG_REASON) {
                long.push(format!("{}:{sig}: {name}, {n} lines", f.rel));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines with no `{LONG_REASON}` comment saying why:\n{}",
        long.join("\n")
    );
}
