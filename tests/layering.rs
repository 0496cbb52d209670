//! The layering rule of docs/ARCHITECTURE.md, checked on the source: a module may use modules
//! of its own layer and the layers below, never one above. A new top-level module must be given
//! a layer here, so the rule cannot be skipped by adding one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, bottom first.
const LAYERS: &[&[&str]] = &[
    // The shared vocabulary and plain helpers.
    &["job", "control", "units", "users", "schedule"],
    // What a job is made of and where its facts live.
    &["config", "runtime", "store", "state_dir", "logging"],
    // The actor that runs jobs.
    &["scheduler"],
    // What follows the scheduler's events: notifications and metrics.
    &["notify", "metrics"],
    // The ways in: the control socket and the dashboard.
    &["socket", "tui"],
    // The command line.
    &["commands", "cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a piece of source names through `crate::`, with comments left out.
fn crate_uses(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut uses = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c}`: the names at the group's first level.
            let mut depth = 1;
            let mut expect_name = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            if !name.is_empty() {
                                uses.insert(std::mem::take(&mut name));
                            }
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if expect_name && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                        name.push(c);
                        continue;
                    }
                    _ => {}
                }
                if !name.is_empty() {
                    uses.insert(std::mem::take(&mut name));
                    expect_name = false;
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                uses.insert(name);
            }
        }
    }
    uses
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let module = Path::new(first.as_os_str())
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(layer) = layer_of(&module) else {
            problems.push(format!(
                "src/{}: module `{module}` has no layer in tests/layering.rs",
                relative.display()
            ));
            continue;
        };
        let source = std::fs::read_to_string(&file).unwrap();
        for used in crate_uses(&source) {
            checked += 1;
            match layer_of(&used) {
                Some(theirs) if theirs > layer => problems.push(format!(
                    "src/{}: `{module}` (layer {layer}) uses `crate::{used}` (layer {theirs})",
                    relative.display()
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "src/{}: uses `crate::{used}`, which has no layer in tests/layering.rs",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} uses found: is the scan broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_reads_paths_and_groups() {
    let uses = crate_uses(
        "use crate::config::{self, Config};\nuse crate::{job::Status, control::{A, B}, units};\n\
         let x = crate::store::open(); // crate::commands in a comment\n",
    );
    let uses: Vec<&str> = uses.iter().map(String::as_str).collect();
    assert_eq!(uses, ["config", "control", "job", "store", "units"]);
}
