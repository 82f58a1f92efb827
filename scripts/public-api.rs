//! Public items no one outside their crate uses (issue 22: a crate's public surface is what other crates
//! use). For each library crate it reads the `pub` items its `src/` defines (functions, methods, types,
//! traits, constants, statics, modules; not `pub(crate)`/`pub(super)`, not re-exports, not fields, not items
//! of an inline `#[cfg(test)] mod`), then looks for each name, as a whole word, in every other text file of the
//! repository: other crates, this crate's tests, examples, benches and binaries, C and script sources, docs.
//! An item whose name appears nowhere else is reported unless the allow-list names it; exit status 1 then.
//!
//! The match is by name, so it errs on the lenient side (a method `new` is always "used"); it catches the
//! item made `pub` for no user, which is what it is for.
//!
//! Built and run by `scripts/check-public-api.sh` with `rustc` alone (standard library only); its own tests
//! run with `rustc --test`. Arguments: the repository root and the allow-list file. Input: lines
//! `CRATE<TAB>CRATE_DIRECTORY`, one a library crate, on stdin. Allow-list lines: `crate::Name`, `#` comments.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// A `pub` item: its crate, name, file and line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    krate: String,
    name: String,
    file: PathBuf,
    line: usize,
}

const KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "trait", "const", "static", "type", "mod", "union",
];
const QUALIFIERS: &[&str] = &["unsafe", "async", "extern", "const", "\"C\"", "\"C-unwind\"", "mut"];

/// The `pub` items a source text defines (line numbers from 1).
fn pub_items(text: &str) -> Vec<(String, usize)> {
    let mut items = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        // An inline test module: nothing in it is public surface.
        if line == "#[cfg(test)]" {
            let next = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("#["));
            if next.is_some_and(|n| n.starts_with("mod ") && n.ends_with('{')) {
                break;
            }
        }
        if let Some(rest) = line.strip_prefix("pub ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let mut w = 0;
            // `const fn` and `const NAME`: a qualifier only when a keyword follows.
            while w + 1 < words.len()
                && QUALIFIERS.contains(&words[w])
                && KEYWORDS
                    .iter()
                    .any(|k| words[w + 1] == *k || QUALIFIERS.contains(&words[w + 1]))
            {
                w += 1;
            }
            if let (Some(keyword), Some(name)) = (words.get(w), words.get(w + 1)) {
                if KEYWORDS.contains(keyword) {
                    let name: String = name.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != "_" {
                        items.push((name, i + 1));
                    }
                }
            }
        }
        i += 1;
    }
    items
}

/// The identifiers (words of letters, digits and `_`) of a text.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

const TEXT: &[&str] = &[
    "rs", "md", "c", "h", "cpp", "py", "js", "mjs", "ts", "sh", "toml", "txt", "in",
];

/// Every text file under `dir`, build output and VCS data left out.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                files(&path, out);
            }
        } else if kind.is_file() && path.extension().is_some_and(|e| TEXT.contains(&&*e.to_string_lossy())) {
            out.push(path);
        }
    }
}

/// Whether `file` is part of the library sources under `src` (its binaries are users of it).
fn in_library(file: &Path, src: &Path) -> bool {
    file.starts_with(src) && !file.starts_with(src.join("bin")) && file != src.join("main.rs")
}

/// The items of `crates` used by no file but their own library's sources.
fn unused(root: &Path, crates: &[(String, PathBuf)], skip: &Path) -> Vec<Item> {
    let mut all = Vec::new();
    files(root, &mut all);
    // The allow-list names every item it allows: not a use.
    all.retain(|p| p != skip);
    let texts: Vec<(PathBuf, String)> = all
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    // Where each word appears.
    let mut seen: HashMap<&str, Vec<usize>> = HashMap::new();
    for (n, (_, text)) in texts.iter().enumerate() {
        let mut here = HashSet::new();
        for w in words(text) {
            if here.insert(w) {
                seen.entry(w).or_default().push(n);
            }
        }
    }
    let mut found = Vec::new();
    for (krate, dir) in crates {
        let src = dir.join("src");
        for (file, text) in texts
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "rs") && in_library(p, &src))
        {
            for (name, line) in pub_items(text) {
                let used = seen
                    .get(name.as_str())
                    .is_some_and(|at| at.iter().any(|&n| !in_library(&texts[n].0, &src)));
                if !used {
                    found.push(Item {
                        krate: krate.clone(),
                        name,
                        file: file.clone(),
                        line,
                    });
                }
            }
        }
    }
    found.sort();
    found
}

/// `crate::Name` entries of the allow-list.
fn allowed(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(list)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: public-api ROOT ALLOW_LIST < crates");
        std::process::exit(2);
    };
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("public-api: reading the crate list: {e}");
        std::process::exit(2);
    }
    let crates: Vec<(String, PathBuf)> = input
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(c, d)| (c.to_string(), PathBuf::from(d)))
        .collect();
    let allow = match std::fs::read_to_string(list) {
        Ok(t) => allowed(&t),
        Err(e) => {
            eprintln!("public-api: reading {list}: {e}");
            std::process::exit(2);
        }
    };
    let root = Path::new(root);
    let unused = unused(root, &crates, Path::new(list));
    let mut failed = 0;
    for item in &unused {
        if !allow.contains(&format!("{}::{}", item.krate, item.name)) {
            let file = item.file.strip_prefix(root).unwrap_or(&item.file);
            println!(
                "{}:{}: `{}` is pub in {} but no other crate, test, example or doc uses it: make it pub(crate) (or \
                 private), or add `{}::{}` to the allow-list saying why it is public API",
                file.display(),
                item.line,
                item.name,
                item.krate,
                item.krate,
                item.name
            );
            failed += 1;
        }
    }
    let still: HashSet<String> = unused.iter().map(|i| format!("{}::{}", i.krate, i.name)).collect();
    for entry in allow.iter().filter(|e| !still.contains(*e)) {
        println!("note: allow-list entry `{entry}` is used elsewhere or gone now: it can be removed");
    }
    if failed > 0 {
        println!("public-api: {failed} public item(s) no one uses");
        std::process::exit(1);
    }
    println!(
        "public-api: every pub item of {} crates is used or allow-listed",
        crates.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pub_items_are_found_and_restricted_ones_are_not() {
        let src = "pub fn a() {}\npub(crate) fn b() {}\npub const fn c() {}\npub const D: u8 = 1;\n\
                   pub unsafe extern \"C\" fn e() {}\npub use x::F;\n    pub fn g(&self) {}\npub struct H<T>(T);\n\
                   pub mod i;\n#[cfg(test)]\nmod tests {\n    pub fn j() {}\n}\n";
        let names: Vec<String> = pub_items(src).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "c", "D", "e", "g", "H", "i"]);
    }

    #[test]
    fn an_item_used_only_by_its_own_library_is_reported() {
        let root = std::env::temp_dir().join(format!("public-api-test-{}", std::process::id()));
        let write = |p: &str, t: &str| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        write(
            "crates/a/src/lib.rs",
            "pub fn used_by_b() {}\npub fn used_by_a_test() {}\npub fn lonely() { lonely() }\n",
        );
        write("crates/a/tests/t.rs", "a::used_by_a_test();\n");
        write("crates/b/src/lib.rs", "fn x() { a::used_by_b() }\n");
        write("allowed.txt", "a::lonely\n");
        let found = unused(&root, &[("a".into(), root.join("crates/a"))], &root.join("allowed.txt"));
        std::fs::remove_dir_all(&root).unwrap();
        let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lonely"]);
    }

    #[test]
    fn the_allow_list_reads_entries_and_skips_comments() {
        let list = allowed("# why\na::X  # the reason\n\nb::Y\n");
        assert_eq!(list.into_iter().collect::<Vec<_>>(), ["a::X", "b::Y"]);
    }
}
