//! Files that fit in a head, kept by a test: no Rust file outside integration tests runs past
//! [`MAX_LINES`] lines — in the library (its `#[cfg(test)]` modules included), the functions,
//! the CLI, the simulator, the test harness and the benchmark. Integration tests (a crate's
//! `tests/` folder: `tests/tests/`, `cli/tests/`, …) may be long: each file is one subject's
//! stories.

use std::path::{Path, PathBuf};

/// A file's lines, its last included.
const MAX_LINES: usize = 800;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether `dir` holds a crate's integration tests: a `tests` folder beside the manifest of a
/// package (not the workspace's, whose `tests` folder is the test harness crate).
fn is_integration_tests(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "tests")
        && dir
            .parent()
            .and_then(|crate_dir| std::fs::read_to_string(crate_dir.join("Cargo.toml")).ok())
            .is_some_and(|manifest| manifest.lines().any(|line| line.trim() == "[package]"))
}

/// The Rust files below `dir`, leaving out integration tests, build output and hidden folders
/// (`.git`, `.venv`).
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let skipped = path
                .file_name()
                .is_some_and(|n| n == "target" || n.to_string_lossy().starts_with('.'));
            if !skipped && !is_integration_tests(&path) {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The files below `root` past [`MAX_LINES`], as `path: N lines`.
fn too_long(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            let shown = file.strip_prefix(root).unwrap_or(file).display();
            (lines > MAX_LINES).then(|| format!("{shown}: {lines} lines"))
        })
        .collect()
}

#[test]
fn the_reading_leaves_out_integration_tests_only() {
    let root = std::env::temp_dir().join(format!("file-size-{}", std::process::id()));
    let long = "// a line\n".repeat(MAX_LINES + 1);
    let short = "// a line\n".repeat(MAX_LINES);
    for (path, text) in [
        ("Cargo.toml", "[workspace]\n"),
        ("lib/Cargo.toml", "[package]\nname = \"lib\"\n"),
        ("lib/src/long.rs", long.as_str()),
        ("lib/src/short.rs", short.as_str()),
        ("lib/tests/story.rs", long.as_str()),
        ("tests/Cargo.toml", "[package]\nname = \"harness\"\n"),
        ("tests/src/long.rs", long.as_str()),
        ("tests/tests/story.rs", long.as_str()),
        (".hidden/long.rs", long.as_str()),
    ] {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let found = too_long(&root);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(
        found,
        vec![
            format!("lib/src/long.rs: {} lines", MAX_LINES + 1),
            format!("tests/src/long.rs: {} lines", MAX_LINES + 1),
        ]
    );
}

#[test]
fn no_file_outside_integration_tests_runs_past_800_lines() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("shared/src/lib.rs"))
            && files
                .iter()
                .any(|f| f.ends_with("tests/simulator/src/lib.rs"))
            && !files
                .iter()
                .any(|f| f.ends_with("tests/tests/file_size.rs")),
        "the reading works: {} files",
        files.len()
    );
    let too_long = too_long(&root);
    assert!(
        too_long.is_empty(),
        "files past {MAX_LINES} lines — split each along the concepts inside it: {too_long:#?}"
    );
}
