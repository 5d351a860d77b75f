//! The crate's modules form layers: each imports only from the layers below it, so there
//! is no import circle and a newcomer can read the crate from the bottom up. The test reads
//! every `crate::` path in `src/` (test code aside) and holds the module graph against the
//! order below.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The top-level modules, lowest layer first. A module may import from the modules before
/// it, never from one after it.
const LAYERS: &[&str] = &[
    // Plain values every layer shares: ids, the clock, a contract call.
    "ids", "clock", "call",   // The chain: bindings, user operations, the client.
    "chain",  // The signer kinds: secp256k1, P-256 and WebAuthn, and their checks.
    "signer", // The domain: API keys, sessions, policies, intents, held keys.
    "auth", "session", "policy", "intent", "keys",
    // Intent changes told, persistence, counting, and the relay on top of them.
    "events", "store", "metrics", "relay", // The use cases and the edge.
    "app", "api", // The process: config, the bundler JSON-RPC, wiring, operator commands.
    "config", "rpc", "daemon", "cli",
];

/// Imports that run against the layers on purpose, each with its reason. Empty: none do.
const AGAINST_THE_LAYERS: &[(&str, &str)] = &[];

#[test]
fn modules_import_only_from_the_layers_below() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let rank = |module: &str| {
        LAYERS
            .iter()
            .position(|layer| *layer == module)
            .unwrap_or_else(|| panic!("module `{module}` is missing from LAYERS"))
    };
    let mut against = Vec::new();
    for (from, imports) in &graph {
        for (to, files) in imports {
            if rank(to) > rank(from) {
                against.push(format!("{from} -> {to} (in {})", join(files)));
            }
        }
    }
    let allowed: Vec<String> = AGAINST_THE_LAYERS
        .iter()
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    against.retain(|arrow| {
        !allowed
            .iter()
            .any(|ok| arrow.starts_with(&format!("{ok} ")))
    });
    assert!(
        against.is_empty(),
        "imports against the layers:\n{}",
        against.join("\n")
    );
    assert!(
        AGAINST_THE_LAYERS.len() <= 2,
        "at most two arrows may run against the layers"
    );
    for module in LAYERS {
        assert!(
            graph.contains_key(*module) || src_has(module),
            "LAYERS names `{module}`, which is no module of the crate"
        );
    }
}

#[test]
fn there_is_no_import_circle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let edges: BTreeMap<&str, BTreeSet<&str>> = graph
        .iter()
        .map(|(from, imports)| {
            (
                from.as_str(),
                imports.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            )
        })
        .collect();
    for start in edges.keys() {
        let mut path = vec![*start];
        if let Some(circle) = find_circle(&edges, start, &mut path) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_sees_every_kind_of_import_and_skips_comments_and_tests() {
    let code = "use crate::{\n    auth::{Caller, Scope},\n    store::Store,\n};\n\
                // see crate::daemon\n\
                fn f() { crate::clock::now_ms(); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n";
    let names = crate_imports(&without_tests(&code_only(code)));
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["auth", "clock", "store"]
    );
}

/// A path from the last module of `path` back to `start`, if any.
fn find_circle<'a>(
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    start: &'a str,
    path: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let last = *path.last()?;
    for next in edges.get(last).into_iter().flatten() {
        if *next == start {
            let mut circle = path.clone();
            circle.push(start);
            return Some(circle);
        }
        if !path.contains(next) {
            path.push(next);
            if let Some(circle) = find_circle(edges, start, path) {
                return Some(circle);
            }
            path.pop();
        }
    }
    None
}

fn src_has(module: &str) -> bool {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    src.join(format!("{module}.rs")).exists() || src.join(module).join("mod.rs").exists()
}

fn join(files: &BTreeSet<String>) -> String {
    files.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Module -> module it imports -> the files that import it, over the crate's own code
/// (test modules and the crate roots aside).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let modules: BTreeSet<String> = fs::read_dir(src)
        .expect("src/ lists")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            match name.strip_suffix(".rs") {
                Some("lib" | "main") => None,
                Some(stem) => Some(stem.to_owned()),
                None if path.is_dir() => Some(name),
                None => None,
            }
        })
        .collect();
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let test_files: BTreeSet<PathBuf> = files.iter().flat_map(|file| test_children(file)).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files.iter().filter(|file| !test_files.contains(*file)) {
        let relative = file.strip_prefix(src).expect("under src/");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|name| name.trim_end_matches(".rs").to_owned())
            .expect("a file name");
        if !modules.contains(&top) {
            continue;
        }
        let text = fs::read_to_string(file).expect("a source file reads");
        for imported in crate_imports(&without_tests(&code_only(&text))) {
            if imported != top && modules.contains(&imported) {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(imported)
                    .or_default()
                    .insert(relative.display().to_string());
            }
        }
    }
    graph
}

fn collect_rs(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory lists") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rs(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The files `file` declares as test-only modules (`#[cfg(test)] mod name;`).
fn test_children(file: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(file).expect("a source file reads");
    let dir = match file.file_name().and_then(|name| name.to_str()) {
        Some("mod.rs" | "lib.rs" | "main.rs") => file.parent().expect("a parent").to_owned(),
        _ => file.with_extension(""),
    };
    let mut children = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let declared = rest.trim_start();
        if let Some(name) = declared
            .strip_prefix("mod ")
            .and_then(|tail| tail.split_once(';'))
            .map(|(name, _)| name.trim())
            .filter(|name| name.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            children.push(dir.join(format!("{name}.rs")));
            children.push(dir.join(name).join("mod.rs"));
        }
    }
    children
}

/// `text` without its comments, so that doc links do not count as imports.
fn code_only(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` up to its inline test module (`#[cfg(test)] mod name {`), which sits last.
fn without_tests(text: &str) -> String {
    let mut searched = 0;
    while let Some(at) = text[searched..].find("#[cfg(test)]") {
        let start = searched + at;
        let after = text[start + "#[cfg(test)]".len()..].trim_start();
        let inline_module = after
            .strip_prefix("mod ")
            .and_then(|tail| {
                tail.find(['{', ';'])
                    .map(|end| tail.as_bytes()[end] == b'{')
            })
            .unwrap_or(false);
        if inline_module {
            return text[..start].to_owned();
        }
        searched = start + 1;
    }
    text.to_owned()
}

/// The top-level module named by every `crate::` path in `code`, in `use` trees too.
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(tree) => top_level_names(tree, &mut names),
            None => {
                names.insert(identifier(rest));
            }
        }
    }
    names
}

/// The first name of each item of the `use` tree that starts after its `{`.
fn top_level_names(tree: &str, names: &mut BTreeSet<String>) {
    let mut depth = 0usize;
    let mut at_item_start = true;
    for (index, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                names.insert(identifier(&tree[index..]));
                at_item_start = false;
            }
            _ => {}
        }
    }
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
