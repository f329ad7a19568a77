//! The layers of ARCHITECTURE.md, held against the code: a module of `src/` may use only
//! modules of lower layers (`crate::x` paths in code, `use` lines and doc links alike). This
//! reads the source text, so it fails on the upward import itself, naming the file and line.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top. A module may name modules of strictly lower layers only; modules of one
/// layer never name each other. Keep in step with ARCHITECTURE.md, "Layers".
const LAYERS: &[&[&str]] = &[
    &["backoff", "config", "telemetry"],
    &["hub", "generate", "parse"],
    &["lake"],
    &["query"],
    &["report"],
    &["stream"],
    &["sources"],
    &["sinks"],
    &["control"],
    &["ingest"],
    &["agent"],
    &["cli"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate root and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules a line names through `crate::` (also `crate::{a::x, b}`), with
/// comments outside doc links removed.
fn named_modules(line: &str) -> Vec<String> {
    let code = match line.find("//") {
        // Doc comments count (an intra-doc link is a dependency); plain comments do not.
        Some(i) if !line[i..].starts_with("///") && !line[i..].starts_with("//!") => &line[..i],
        _ => line,
    };
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `hubpulse_crate::`, `some_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unplaced = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            unplaced.insert(module, file.display().to_string());
            continue;
        };
        let text = fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for used in named_modules(line) {
                if used == module {
                    continue;
                }
                match layer_of(&used) {
                    Some(l) if l < own => {}
                    Some(l) => upward.push(format!(
                        "{}:{}: `{module}` (layer {own}) uses `crate::{used}` (layer {l})",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1
                    )),
                    None => {} // not a module: `crate::SomeItem` re-exported at the root
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "top-level modules without a layer (add them to LAYERS and ARCHITECTURE.md): {unplaced:?}"
    );
    assert!(
        upward.is_empty(),
        "lower layers never import higher ones (ARCHITECTURE.md, \"Layers\"):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_import_reader_sees_every_form() {
    assert_eq!(
        named_modules("use crate::lake::manifest::Manifest;"),
        ["lake"]
    );
    assert_eq!(
        named_modules("use crate::{lake::x, query};"),
        ["lake", "query"]
    );
    assert_eq!(
        named_modules("    let m = crate::agent::http::Server::default();"),
        ["agent"]
    );
    assert_eq!(
        named_modules("/// see [`crate::report::rebuild`]"),
        ["report"]
    );
    assert!(named_modules("let x = 1; // crate::agent in a plain comment").is_empty());
    assert!(named_modules("use other_crate::agent;").is_empty());
}

#[test]
fn every_layer_lists_modules_that_exist() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for m in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            src.join(format!("{m}.rs")).exists() || src.join(m).join("mod.rs").exists(),
            "LAYERS names `{m}`, which is not a module of src/"
        );
    }
}
