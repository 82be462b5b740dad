//! The crate's shape, read from its source: the top-level modules import each other without
//! a cycle, the start-up wiring is imported by nothing, and no source file outgrows what one
//! concept needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the server crate's library sources are.
fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, except the binaries'.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "bin") {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a source file belongs to (`state/snapshot.rs` → `state`).
fn top_module(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    Path::new(first)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The lines of a file that are not tests: a `tests.rs` file has none, and elsewhere an inline
/// `#[cfg(test)] mod tests { ... }` ends a file by this crate's habit (a `#[cfg(test)]` before
/// a `mod x;` declaration only names a test file).
fn non_test_lines(file: &Path) -> Vec<String> {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod ") && w[1].ends_with('{'))
        .unwrap_or(lines.len());
    lines[..end].iter().map(|l| l.to_string()).collect()
}

/// The top-level modules that each top-level module's non-test code names as `crate::x`.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = src_dir();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(&src) {
        let from = top_module(&src, &file);
        let imports = graph.entry(from.clone()).or_default();
        for line in non_test_lines(&file) {
            let code = line.split("//").next().unwrap_or_default();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if code[..i].ends_with('$') || name.is_empty() || name == from {
                    continue;
                }
                imports.insert(name);
            }
        }
    }
    graph
}

/// A cycle through `start`, if there is one, as the modules along it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = module_imports();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    // The reader must see real imports, or the check below would pass on nothing.
    assert!(graph["v3"].contains("server"), "{:?}", graph["v3"]);
    assert!(graph["state"].contains("mvcc"), "{:?}", graph["state"]);
    assert!(graph["app"].contains("transport"), "{:?}", graph["app"]);
    let cycles: Vec<Vec<String>> = graph.keys().filter_map(|m| cycle_from(&graph, m)).collect();
    assert!(cycles.is_empty(), "module cycles: {cycles:?}");
}

#[test]
fn nothing_imports_the_start_up_wiring() {
    let importers: Vec<String> = module_imports()
        .into_iter()
        .filter(|(_, imports)| imports.contains("app"))
        .map(|(module, _)| module)
        .collect();
    assert!(importers.is_empty(), "app is imported by {importers:?}");
}

#[test]
fn no_source_file_outgrows_one_concept() {
    const MAX_LINES: usize = 600;
    let src = src_dir();
    let long: Vec<(PathBuf, usize)> = sources(&src)
        .into_iter()
        .map(|f| {
            let n = non_test_lines(&f).len();
            (f, n)
        })
        .filter(|(_, n)| *n > MAX_LINES)
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn a_cycle_is_found_where_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_string(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(cycle_from(&graph, "d"), None);
}
