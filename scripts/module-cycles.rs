//! Module cycles of the workspace's crates (issue 22): for each target (library, binaries, tests, examples)
//! it reads the module tree from the sources (`mod` declarations, `#[path]` included, inline modules as modules
//! of their own), collects every path that names something of the crate (`use` trees, and `crate::`,
//! `super::`, `self::` and module-relative paths anywhere, macro bodies included), follows `use` re-exports
//! to the module that defines the item, and reports each strongly connected set of modules with a cycle
//! through it and the lines that make each edge. Exit status 1 when a cycle was found.
//!
//! Built and run by `scripts/check-module-cycles.sh` with `rustc` alone (standard library only); its own
//! tests run with `rustc --test`. Input: lines `NAME<TAB>KIND<TAB>ROOT_FILE`, one a target, on stdin.
//! With `MODULE_CYCLES_EDGES` set it also prints every edge it found.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Lit(String),
    Punct(char),
    PathSep,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Tokens of Rust source: comments dropped, literals kept whole (strings with their text, for `#[path]`).
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident_start = |ch: char| ch == '_' || ch.is_alphabetic();
    let ident_char = |ch: char| ch == '_' || ch.is_alphanumeric();
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            let start_line = line;
            let (text, next) = string(&c, i + 1, &mut line);
            out.push(Token { tok: Tok::Lit(text), line: start_line });
            i = next;
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                // An escaped character literal.
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(Token { tok: Tok::Lit(String::new()), line });
            } else if at(i + 2) == '\'' {
                i += 3;
                out.push(Token { tok: Tok::Lit(String::new()), line });
            } else {
                // A lifetime or a label.
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ident_start(ch) || (ch == '$' && ident_start(at(i + 1))) {
            let start = i;
            i += 1;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let prefix = matches!(word.as_str(), "r" | "b" | "c" | "br" | "cr");
            if prefix && (at(i) == '"' || (at(i) == '#' && word != "b" && word != "c" && matches!(at(i + 1), '"' | '#'))) {
                let start_line = line;
                let raw = word.contains('r');
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // the opening quote
                let text;
                if raw {
                    let from = i;
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                            break;
                        }
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    text = c[from..i.min(c.len())].iter().collect();
                    i += 1 + hashes;
                } else {
                    let (t, next) = string(&c, i, &mut line);
                    text = t;
                    i = next;
                }
                out.push(Token { tok: Tok::Lit(text), line: start_line });
            } else if word == "b" && at(i) == '\'' {
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push(Token { tok: Tok::Lit(String::new()), line });
            } else if word == "r" && at(i) == '#' && ident_start(at(i + 1)) {
                // A raw identifier.
                let from = i + 1;
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                out.push(Token { tok: Tok::Ident(c[from..i].iter().collect()), line });
            } else {
                out.push(Token { tok: Tok::Ident(word), line });
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (ident_char(c[i]) || (c[i] == '.' && at(i + 1).is_ascii_digit())) {
                i += 1;
            }
            out.push(Token { tok: Tok::Lit(String::new()), line });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token { tok: Tok::PathSep, line });
            i += 2;
        } else {
            out.push(Token { tok: Tok::Punct(ch), line });
            i += 1;
        }
    }
    out
}

/// A (non-raw) string's text from `i` (after the quote) to its closing quote; the index after it.
fn string(c: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut text = String::new();
    while i < c.len() && c[i] != '"' {
        if c[i] == '\\' {
            i += 1;
        }
        if let Some(&ch) = c.get(i) {
            if ch == '\n' {
                *line += 1;
            }
            text.push(ch);
        }
        i += 1;
    }
    (text, i + 1)
}

/// A path as written, with the line it is on.
#[derive(Debug, Clone)]
struct Reference {
    path: Vec<String>,
    line: usize,
}

#[derive(Debug)]
struct Module {
    /// `crate::a::b`.
    name: String,
    file: PathBuf,
    /// Children are looked up in `dir/NAME.rs` and `dir/NAME/mod.rs`.
    dir: PathBuf,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    /// Names brought in by `use`: local name -> path as written.
    uses: BTreeMap<String, Vec<String>>,
    references: Vec<Reference>,
}

struct Crate {
    modules: Vec<Module>,
    warnings: Vec<String>,
}

fn tok_at(t: &[Token], i: usize) -> Option<&Tok> {
    t.get(i).map(|t| &t.tok)
}

fn ident_at(t: &[Token], i: usize) -> Option<&str> {
    match tok_at(t, i) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// The index of the bracket closing the one at `open`.
fn matching(t: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, token) in t.iter().enumerate().skip(open) {
        match token.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    t.len()
}

impl Crate {
    fn load(root: &Path) -> Crate {
        let mut krate = Crate { modules: Vec::new(), warnings: Vec::new() };
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        krate.file_module("crate".to_string(), root.to_path_buf(), dir, None);
        krate
    }

    fn file_module(&mut self, name: String, file: PathBuf, dir: PathBuf, parent: Option<usize>) -> usize {
        let index = self.modules.len();
        self.modules.push(Module {
            name,
            file: file.clone(),
            dir: dir.clone(),
            parent,
            children: BTreeMap::new(),
            uses: BTreeMap::new(),
            references: Vec::new(),
        });
        match std::fs::read_to_string(&file) {
            Ok(src) => {
                let tokens = lex(&src);
                self.items(&tokens, 0, tokens.len(), index, true);
            }
            Err(e) => self.warnings.push(format!("{}: {e}", file.display())),
        }
        index
    }

    /// Read the items of module `m` in `t[start..end]`; `in_file` when they are the file's own (not an
    /// inline module's), for `#[path]`.
    fn items(&mut self, t: &[Token], start: usize, end: usize, m: usize, in_file: bool) {
        let mut i = start;
        let mut path_attr: Option<String> = None;
        while i < end {
            match &t[i].tok {
                Tok::Punct('#') => {
                    let mut j = i + 1;
                    if tok_at(t, j) == Some(&Tok::Punct('!')) {
                        j += 1;
                    }
                    if tok_at(t, j) != Some(&Tok::Punct('[')) {
                        i += 1;
                        continue;
                    }
                    let close = matching(t, j);
                    if ident_at(t, j + 1) == Some("path") && tok_at(t, j + 2) == Some(&Tok::Punct('=')) {
                        if let Some(Tok::Lit(p)) = tok_at(t, j + 3) {
                            path_attr = Some(p.clone());
                        }
                    }
                    i = close + 1;
                    continue;
                }
                Tok::Ident(w) if w == "mod" => {
                    let Some(name) = ident_at(t, i + 1).map(str::to_string) else {
                        i += 1;
                        continue;
                    };
                    let qualified = format!("{}::{name}", self.modules[m].name);
                    if tok_at(t, i + 2) == Some(&Tok::Punct('{')) {
                        let close = matching(t, i + 2).min(end);
                        let index = self.modules.len();
                        let dir = self.modules[m].dir.join(&name);
                        self.modules.push(Module {
                            name: qualified,
                            file: self.modules[m].file.clone(),
                            dir,
                            parent: Some(m),
                            children: BTreeMap::new(),
                            uses: BTreeMap::new(),
                            references: Vec::new(),
                        });
                        self.modules[m].children.insert(name, index);
                        self.items(t, i + 3, close, index, false);
                        i = close + 1;
                    } else {
                        let base = if in_file {
                            self.modules[m].file.parent().unwrap_or(Path::new(".")).to_path_buf()
                        } else {
                            self.modules[m].dir.clone()
                        };
                        let candidates = match path_attr.take() {
                            Some(p) => vec![base.join(p)],
                            None => vec![
                                self.modules[m].dir.join(format!("{name}.rs")),
                                self.modules[m].dir.join(&name).join("mod.rs"),
                            ],
                        };
                        match candidates.iter().find(|p| p.is_file()) {
                            Some(file) => {
                                let is_mod_rs = file.file_name().is_some_and(|f| f == "mod.rs");
                                let dir = match is_mod_rs {
                                    true => file.parent().unwrap_or(Path::new(".")).to_path_buf(),
                                    false => file.with_extension(""),
                                };
                                let index = self.file_module(qualified, file.clone(), dir, Some(m));
                                self.modules[m].children.insert(name, index);
                            }
                            None => self.warnings.push(format!(
                                "{}:{}: no file for module {name} (tried {})",
                                self.modules[m].file.display(),
                                t[i].line,
                                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                            )),
                        }
                        i += 2;
                    }
                    path_attr = None;
                }
                Tok::Ident(w) if w == "use" && tok_at(t, i + 1) != Some(&Tok::Punct('<')) => {
                    let line = t[i].line;
                    let mut leaves = Vec::new();
                    let next = use_tree(t, i + 1, Vec::new(), &mut leaves);
                    for (path, name) in leaves {
                        if let Some(name) = name.filter(|n| n != "_") {
                            self.modules[m].uses.insert(name, path.clone());
                        }
                        self.modules[m].references.push(Reference { path, line });
                    }
                    i = next.max(i + 1);
                    path_attr = None;
                }
                Tok::Ident(first) if tok_at(t, i + 1) == Some(&Tok::PathSep) => {
                    let line = t[i].line;
                    let mut path = vec![first.clone()];
                    let mut j = i + 1;
                    while tok_at(t, j) == Some(&Tok::PathSep) {
                        match ident_at(t, j + 1) {
                            Some(s) => path.push(s.to_string()),
                            None => break,
                        }
                        j += 2;
                    }
                    self.modules[m].references.push(Reference { path, line });
                    i = j;
                }
                Tok::Punct(';' | '{' | '}') => {
                    path_attr = None;
                    i += 1;
                }
                _ => i += 1,
            }
        }
    }

    /// The module that defines what `path` (written in module `m`) names; `None` outside the crate.
    fn resolve(&self, m: usize, path: &[String], depth: usize) -> Option<usize> {
        if depth > 32 || path.is_empty() {
            return None;
        }
        let module = &self.modules[m];
        let (mut current, rest) = match path[0].as_str() {
            "crate" | "$crate" => (0, &path[1..]),
            "self" => (m, &path[1..]),
            "super" => (module.parent?, &path[1..]),
            first if module.children.contains_key(first) || module.uses.contains_key(first) => (m, path),
            _ => return None,
        };
        for (k, segment) in rest.iter().enumerate() {
            if segment == "super" {
                current = self.modules[current].parent?;
            } else if segment == "self" {
                continue;
            } else if let Some(&child) = self.modules[current].children.get(segment) {
                current = child;
            } else if let Some(target) = self.modules[current].uses.get(segment) {
                let mut again = target.clone();
                again.extend(rest[k + 1..].iter().cloned());
                return self.resolve(current, &again, depth + 1);
            } else {
                return Some(current);
            }
        }
        Some(current)
    }

    /// Edges between modules, each with the lines that make it.
    fn edges(&self) -> BTreeMap<(usize, usize), Vec<String>> {
        let mut edges: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        for (m, module) in self.modules.iter().enumerate() {
            for r in &module.references {
                if let Some(target) = self.resolve(m, &r.path, 0).filter(|&t| t != m) {
                    edges
                        .entry((m, target))
                        .or_default()
                        .push(format!("{}:{} {}", module.file.display(), r.line, r.path.join("::")));
                }
            }
        }
        edges
    }
}

/// Parse a use tree from `t[i]`; leaves are (full path, local name). Returns the index after the tree.
fn use_tree(t: &[Token], mut i: usize, mut path: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) -> usize {
    loop {
        match tok_at(t, i) {
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Punct('*')) => {
                out.push((path, None));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                loop {
                    match tok_at(t, i) {
                        Some(Tok::Punct('}')) => return i + 1,
                        Some(Tok::Punct(',')) => i += 1,
                        None => return i,
                        Some(_) => {
                            let next = use_tree(t, i, path.clone(), out);
                            if next <= i {
                                return i + 1;
                            }
                            i = next;
                        }
                    }
                }
            }
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                i += 1;
                if tok_at(t, i) == Some(&Tok::PathSep) {
                    path.push(s);
                    continue;
                }
                let mut name = if s == "self" { path.last().cloned() } else { Some(s.clone()) };
                if s != "self" {
                    path.push(s);
                }
                if ident_at(t, i) == Some("as") {
                    name = ident_at(t, i + 1).map(str::to_string);
                    i += 2;
                }
                out.push((path, name));
                return i;
            }
            _ => return i + 1,
        }
    }
}

/// Strongly connected sets of more than one module (Tarjan, iterative).
fn cycles(n: usize, edges: &BTreeMap<(usize, usize), Vec<String>>) -> Vec<Vec<usize>> {
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        next[a].push(b);
    }
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut counter = 0;
    let mut found = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut k)) = work.last_mut() {
            if *k == 0 && index[v] == usize::MAX {
                index[v] = counter;
                low[v] = counter;
                counter += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = next[v].get(*k) {
                *k += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut set = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    set.push(w);
                    if w == v {
                        break;
                    }
                }
                if set.len() > 1 {
                    set.sort_unstable();
                    found.push(set);
                }
            }
        }
    }
    found
}

/// A shortest cycle through `start` inside `set`.
fn cycle_through(start: usize, set: &BTreeSet<usize>, edges: &BTreeMap<(usize, usize), Vec<String>>) -> Vec<usize> {
    let mut from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(a, b) in edges.keys() {
            if a != v || !set.contains(&b) {
                continue;
            }
            if b == start {
                let mut path = vec![v];
                while let Some(&p) = from.get(path.last().unwrap_or(&start)) {
                    path.push(p);
                }
                path.reverse();
                if path.first() != Some(&start) {
                    path.insert(0, start);
                }
                path.push(start);
                return path;
            }
            if b != start && !from.contains_key(&b) {
                from.insert(b, v);
                queue.push_back(b);
            }
        }
    }
    vec![start]
}

/// The report of one target: the lines to print and the number of cycles.
fn check(label: &str, root: &Path, base: &Path) -> (Vec<String>, usize) {
    let krate = Crate::load(root);
    let edges = krate.edges();
    let found = cycles(krate.modules.len(), &edges);
    let mut lines: Vec<String> = krate.warnings.iter().map(|w| format!("{label}: warning: {w}")).collect();
    let show = |p: &str| p.strip_prefix(&format!("{}/", base.display())).unwrap_or(p).to_string();
    if std::env::var_os("MODULE_CYCLES_EDGES").is_some() {
        for ((a, b), why) in &edges {
            let first = why.first().map_or(String::new(), |w| show(w));
            lines.push(format!("{label}: edge {} -> {}: {first}", krate.modules[*a].name, krate.modules[*b].name));
        }
    }
    for set in &found {
        let members: BTreeSet<usize> = set.iter().copied().collect();
        let path = cycle_through(set[0], &members, &edges);
        let names: Vec<&str> = path.iter().map(|&m| krate.modules[m].name.as_str()).collect();
        lines.push(format!("{label}: module cycle: {}", names.join(" -> ")));
        for pair in path.windows(2) {
            let why = edges.get(&(pair[0], pair[1])).and_then(|w| w.first()).map_or(String::new(), |w| show(w));
            lines.push(format!("    {} -> {}: {why}", krate.modules[pair[0]].name, krate.modules[pair[1]].name));
        }
        if set.len() > path.len() - 1 {
            let all: Vec<&str> = set.iter().map(|&m| krate.modules[m].name.as_str()).collect();
            lines.push(format!("    (the set of modules that reach each other: {})", all.join(", ")));
        }
    }
    (lines, found.len())
}

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("module-cycles: reading the targets: {e}");
        std::process::exit(2);
    }
    let base = std::env::current_dir().unwrap_or_default();
    let (mut total, mut targets) = (0, 0);
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, kind, root] = fields[..] else {
            eprintln!("module-cycles: not NAME<TAB>KIND<TAB>ROOT: {line:?}");
            std::process::exit(2);
        };
        targets += 1;
        let (lines, n) = check(&format!("{name} ({kind})"), Path::new(root), &base);
        for l in lines {
            println!("{l}");
        }
        total += n;
    }
    if total > 0 {
        println!("module-cycles: {total} cycle(s) in {targets} targets");
        std::process::exit(1);
    }
    println!("module-cycles: no module cycle in {targets} targets");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(files: &[(&str, &str)]) -> (PathBuf, Vec<String>, usize) {
        let dir = std::env::temp_dir().join(format!(
            "module-cycles-test-{}-{}",
            std::process::id(),
            files.len() * 1000 + files.iter().map(|f| f.1.len()).sum::<usize>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        let (lines, n) = check("t", &dir.join("lib.rs"), &dir);
        (dir, lines, n)
    }

    #[test]
    fn a_cycle_through_a_root_re_export_is_found_with_its_lines() {
        let (dir, lines, n) = krate(&[
            ("lib.rs", "mod a;\nmod b;\nmod error;\npub use error::Error;\npub use a::A;\n"),
            ("a.rs", "use crate::Error;\npub struct A;\nfn f() { crate::b::g() }\n"),
            ("b.rs", "pub fn g() {\n    let _ = \"crate::a::A\"; // crate::a::A in text only\n    super::A;\n}\n"),
            ("error.rs", "pub struct Error;\n"),
        ]);
        assert_eq!(n, 1, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("crate::a -> crate::b -> crate::a")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("b.rs:3 super::A")), "{lines:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn re_exports_strings_and_test_modules_make_no_cycle() {
        let (dir, lines, n) = krate(&[
            ("lib.rs", "mod a;\nmod b;\npub use a::A;\n"),
            ("a.rs", "pub struct A;\nuse crate::b::{self, G as H};\nfn f() { let _ = r#\"crate::b\"#; b::g(); }\n#[cfg(test)]\n#[path = \"a_tests.rs\"]\nmod tests;\n"),
            ("a_tests.rs", "use super::*;\nfn t() { crate::b::g(); }\n"),
            ("b.rs", "pub struct G;\npub fn g() { let _ = 'x'; let _ = b'\\''; }\n#[cfg(test)]\nmod tests { use crate::a::A; use super::*; }\n"),
        ]);
        assert_eq!(n, 0, "{lines:?}");
        assert!(lines.is_empty(), "{lines:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn nested_modules_and_macro_bodies_count() {
        let (dir, lines, n) = krate(&[
            ("lib.rs", "mod net;\n"),
            ("net.rs", "mod tcp;\npub(crate) fn f() {}\nfn g() { tracing::info!(x = %tcp::X); }\n"),
            ("net/tcp.rs", "pub struct X;\nfn h() { super::f() }\n"),
        ]);
        assert_eq!(n, 1, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("crate::net -> crate::net::tcp -> crate::net")), "{lines:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
