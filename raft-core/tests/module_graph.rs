//! The crate's shape, checked: no import circle between its modules (a module that imports
//! another which imports it back, directly or through others) and no source file over 600
//! lines. Parent and child modules may use each other; everything else must form a graph
//! without cycles, so that state types sit in leaf modules the node and the feature files
//! both use.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("readable source directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `lib.rs` -> "", `a.rs` and `a/mod.rs` -> "a", `a/b.rs` -> "a::b".
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        parts.clear();
    }
    parts.join("::")
}

/// The code without comments and without an inline `#[cfg(test)] mod tests { .. }` at the
/// end (tests may reach anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path written after `prefix` (`crate::` or `super::`), with `a::{B, c::D}` groups
/// expanded one level.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let head = &rest[..end];
        match rest[end..].strip_prefix('{') {
            Some(group) => {
                let close = group.find('}').unwrap_or(group.len());
                for item in group[..close].split(',') {
                    let item: String = item.split_whitespace().collect();
                    paths.push(format!("{head}{item}"));
                }
            }
            None => paths.push(head.trim_end_matches(':').to_string()),
        }
    }
    paths
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

#[test]
fn no_import_circle_between_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            let text = fs::read_to_string(f).expect("readable source file");
            (module_of(&src, f), code(&text))
        })
        .collect();
    // `crate::Name` re-exported by lib.rs means the module it comes from.
    let mut reexported = BTreeMap::new();
    for path in paths_after(
        &modules[""].replace("pub use ", "pub use crate::"),
        "crate::",
    ) {
        if let Some((module, name)) = path.split_once("::") {
            reexported.insert(name.to_string(), module.to_string());
        }
    }
    let resolve = |path: &str| -> Option<String> {
        let segments: Vec<&str> = path.split("::").collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| modules.contains_key(m))
            .or_else(|| reexported.get(segments[0]).cloned())
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &modules {
        if module.is_empty() {
            continue;
        }
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
        let mut paths = paths_after(code, "crate::");
        paths.extend(paths_after(code, "super::").into_iter().map(|p| {
            if parent.is_empty() {
                p
            } else {
                format!("{parent}::{p}")
            }
        }));
        for target in paths.iter().filter_map(|p| resolve(p)) {
            let related = target.is_empty()
                || target == *module
                || module.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{module}::"));
            if !related {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    assert_eq!(find_cycle(&edges), None, "an import circle between modules");
}

#[test]
fn no_source_file_over_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    rust_files(&root.join("benches"), &mut files);
    let long: Vec<(PathBuf, usize)> = files
        .into_iter()
        .map(|f| {
            let lines = fs::read_to_string(&f)
                .expect("readable file")
                .lines()
                .count();
            (f, lines)
        })
        .filter(|(_, lines)| *lines > MAX_LINES)
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}
