//! Functions that do one step, kept by a test: no function outside tests runs past
//! [`MAX_LINES`] lines — in the library, the functions, the CLI, the simulator, the test
//! harness and the benchmark. Test functions (`tests/` folders, `#[cfg(test)]` items) may be
//! long: a test reads as one story.

use std::path::{Path, PathBuf};

/// A function's lines from its `fn` line to its closing brace, both included.
const MAX_LINES: usize = 80;

/// The folders of code that is not a test, from the workspace root.
const CODE: [&str; 6] = [
    "shared/src",
    "functions",
    "cli/src",
    "tests/simulator/src",
    "tests/src",
    "bench/src",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Rust files below `dir`, leaving out `tests` folders (integration tests).
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "tests" && n != "target")
            {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The text with comments and the contents of string and character literals blanked out
/// (line breaks kept), so that braces count only where they are code.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let previous_is_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(blank(chars[i]));
                i += 1;
            }
            i += 2;
        } else if c == 'r' && !previous_is_word && matches!(next, Some('"') | Some('#')) {
            // A raw string: r"…", r#"…"#.
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !chars[i..].starts_with(&close) {
                out.push(blank(chars[i]));
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('{', '\n', '\''); a lifetime ('a) is left as it is.
            i += 1;
            if chars.get(i) == Some(&'\\') {
                i += 1;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether a line starts a function: `[pub[(…)]] [const] [async] [unsafe] fn name`.
fn function_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        let before = rest;
        for prefix in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        if rest == before {
            break;
        }
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Where the item starting at `start` ends: the line its braces close on (or its `;`).
fn item_end(lines: &[&str], start: usize) -> usize {
    let mut depth = 0i64;
    let mut opened = false;
    for (n, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
            return n;
        }
    }
    lines.len() - 1
}

/// Every function of a file outside `#[cfg(test)]` items: (name, first line, lines).
fn functions(file: &Path) -> Vec<(String, usize, usize)> {
    let code = code_only(&std::fs::read_to_string(file).unwrap());
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        if lines[n].trim() == "#[cfg(test)]" {
            n = item_end(&lines, n + 1) + 1;
            continue;
        }
        if let Some(name) = function_name(lines[n]) {
            let end = item_end(&lines, n);
            found.push((name.to_string(), n + 1, end - n + 1));
        }
        n += 1;
    }
    found
}

#[test]
fn the_reading_finds_functions_and_their_lengths() {
    let sample = "pub async fn one(a: &str) -> String {\n    let b = \"}}\";\n    // }\n    let c = '{';\n    format!(\"{a}{b}{c}\")\n}\n\n#[cfg(test)]\nmod tests {\n    fn hidden() {\n    }\n}\nfn two<'a>(x: &'a str) -> &'a str {\n    let _ = r#\"{\"#;\n    x\n}\n";
    let dir = std::env::temp_dir().join(format!("function-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sample.rs");
    std::fs::write(&file, sample).unwrap();
    assert_eq!(
        functions(&file),
        vec![("one".to_string(), 1, 6), ("two".to_string(), 13, 4)]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_function_outside_tests_runs_past_80_lines() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in CODE {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "the reading works: {} files", files.len());
    let mut longest = (0, String::new());
    let mut too_long = Vec::new();
    for file in &files {
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (name, line, length) in functions(file) {
            if length > longest.0 {
                longest = (length, format!("{shown}:{line} {name}"));
            }
            if length > MAX_LINES {
                too_long.push(format!("{shown}:{line} {name}: {length} lines"));
            }
        }
    }
    println!(
        "longest function outside tests: {} lines, {}",
        longest.0, longest.1
    );
    assert!(
        too_long.is_empty(),
        "functions past {MAX_LINES} lines — split them into named steps: {too_long:#?}"
    );
}
