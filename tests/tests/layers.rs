//! The library's layout is its architecture, kept by a test: read from the code's imports
//! (`crate::…`, comments and test modules left out), no file of `shared/src` imports a file that
//! imports it, and each layer imports only the layers before it —
//! domain ← platform ← make ← ports ← sync ← service, and adapters on the ports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers a layer may import (besides itself).
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "domain" => &[],
        "platform" => &["domain"],
        "make" => &["domain", "platform"],
        "ports" => &["domain"],
        "sync" => &["domain", "platform", "make", "ports"],
        "service" => &["domain", "platform", "make", "ports", "sync"],
        "adapters" => &["domain", "platform", "make", "ports"],
        other => panic!("a folder of shared/src that is no layer: {other}"),
    }
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// A file's module path below `shared/src`: `service/worker`, `make` (for `make/mod.rs`).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(source_root()).unwrap().with_extension("");
    let text = relative.to_string_lossy().replace('\\', "/");
    text.strip_suffix("/mod").unwrap_or(&text).to_string()
}

/// The modules the crate root re-exports, by the name they are used with (`worker` →
/// `service/worker`).
fn root_aliases() -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(source_root().join("lib.rs")).unwrap();
    let mut aliases = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((folder, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names
            .trim_matches(|c| c == '{' || c == '}' || char::is_whitespace(c))
            .split(',')
        {
            let name = name.trim();
            if !name.is_empty() {
                aliases.insert(name.to_string(), format!("{folder}/{name}"));
            }
        }
    }
    aliases
}

/// The code of a file without its comments and its test module.
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules (files) a file's code names with `crate::…`.
fn imports(
    file: &Path,
    modules: &BTreeSet<String>,
    aliases: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let code = code_of(file);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let path: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut parts: Vec<String> = path.split("::").map(str::to_string).collect();
        if let Some(alias) = aliases.get(&parts[0]) {
            let mut resolved: Vec<String> = alias.split('/').map(str::to_string).collect();
            resolved.extend(parts.drain(1..));
            parts = resolved;
        }
        // The longest prefix that is a module of its own.
        for n in (1..=parts.len()).rev() {
            let candidate = parts[..n].join("/");
            if modules.contains(&candidate) {
                found.insert(candidate);
                break;
            }
        }
    }
    found.remove(&module_of(file));
    found
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&source_root(), &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let aliases = root_aliases();
    files
        .iter()
        .map(|file| (module_of(file), imports(file, &modules, &aliases)))
        .collect()
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let dependencies = dependencies();
    assert!(
        dependencies["service/worker"].contains("sync"),
        "the reading works: the worker imports the engine"
    );
    let mut pairs = BTreeSet::new();
    for (module, imported) in &dependencies {
        for other in imported {
            if dependencies
                .get(other)
                .is_some_and(|back| back.contains(module))
            {
                let mut pair = [module.clone(), other.clone()];
                pair.sort();
                pairs.insert(pair);
            }
        }
    }
    assert!(pairs.is_empty(), "files that import each other: {pairs:?}");
}

#[test]
fn each_layer_imports_only_the_layers_before_it() {
    let mut breaches = Vec::new();
    for (module, imported) in dependencies() {
        let layer = module.split('/').next().unwrap().to_string();
        if matches!(layer.as_str(), "lib" | "arbitrary") {
            continue;
        }
        for other in imported {
            let other_layer = other.split('/').next().unwrap();
            if other_layer != layer && !allowed(&layer).contains(&other_layer) {
                breaches.push(format!("{module} imports {other}"));
            }
        }
    }
    assert!(breaches.is_empty(), "{breaches:#?}");
}
