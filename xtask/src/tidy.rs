//! Tidy checks on the repository (rust-analyzer style): run by `cargo test -p xtask`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::project_root;

/// Directories of the workspace members (`crates/*`, `xtask`, `examples`, `benches`,
/// `benches/row`).
fn members() -> Vec<PathBuf> {
    let root = project_root();
    let mut v: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    v.extend(["xtask", "examples", "benches", "benches/row"].map(|d| root.join(d)));
    v.sort();
    v
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_member_uses_the_workspace_lints_and_package_fields() {
    let mut bad = Vec::new();
    for dir in members() {
        let toml = read(&dir.join("Cargo.toml"));
        for needle in [
            "[lints]\nworkspace = true",
            "edition.workspace = true",
            "license.workspace = true",
        ] {
            if !toml.contains(needle) {
                bad.push(format!("{}: missing {needle:?}", dir.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn third_party_dependencies_come_from_the_workspace() {
    // `foo = "1"` or `foo = { version = ... }` in a member: versions are pinned once, in the
    // root Cargo.toml. (xtask may list a std-free helper directly; it has none today.)
    let mut bad = Vec::new();
    for dir in members() {
        let toml = read(&dir.join("Cargo.toml"));
        let mut in_deps = false;
        for line in toml.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line.contains("dependencies");
                continue;
            }
            if in_deps
                && line.contains('=')
                && !line.starts_with('#')
                && !line.contains("workspace = true")
            {
                bad.push(format!("{}: {line}", dir.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "use `foo.workspace = true`:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_example_is_listed() {
    // Cargo discovers `examples/examples/NAME.rs` (package mp-examples) as `cargo run --example
    // NAME`; a newcomer finds it through a markdown file in examples/.
    let dir = project_root().join("examples");
    let docs: String = fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| read(&p))
        .collect();
    let mut bad = Vec::new();
    for e in fs::read_dir(dir.join("examples"))
        .expect("examples/examples/")
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if !docs.contains(name) {
                bad.push(format!("{name}.rs: not named in any examples/*.md"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn bench_python_scripts_follow_the_schema() {
    // Every comparison script is a group that prints rows through _rows.emit and takes --quick.
    let dir = project_root().join("benches/python");
    let mut bad = Vec::new();
    for e in fs::read_dir(&dir)
        .expect("benches/python")
        .filter_map(Result::ok)
    {
        let p = e.path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".py") || name.starts_with('_') {
            continue;
        }
        let text = read(&p);
        for needle in ["import _rows", "_rows.emit(", "__main__"] {
            if !text.contains(needle) {
                bad.push(format!("{name}: no {needle:?}"));
            }
        }
        if !name
            .trim_end_matches(".py")
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_')
        {
            bad.push(format!("{name}: group names are lowercase"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_crate_has_a_readme() {
    let missing: Vec<String> = members()
        .into_iter()
        .filter(|d| !d.join("README.md").exists())
        .map(|d| d.display().to_string())
        .collect();
    assert!(missing.is_empty(), "no README.md in: {missing:?}");
}

/// Packages that are never published: tools, benchmarks, examples and test helpers.
const UNPUBLISHED: &[&str] = &[
    "xtask",
    "mp-benches",
    "mp-bench-row",
    "mp-examples",
    "mp-testkit",
];

#[test]
fn library_crates_are_ready_for_crates_io() {
    // Every library crate packages with what crates.io and docs.rs show: description,
    // keywords, categories, readme, a docs.rs link, docs built with all features and their
    // gates marked (`doc(cfg)` through `cfg_attr(docsrs, ...)`), and its Cargo features in its
    // README. Only the tools, benches, examples and mp-testkit say `publish = false`.
    let root = project_root();
    let mut bad = Vec::new();
    let root_toml = read(&root.join("Cargo.toml"));
    if root_toml.contains("example.invalid") {
        bad.push("Cargo.toml: placeholder URL".to_owned());
    }
    let ws_package = root_toml
        .split("[workspace.package]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .unwrap_or_default();
    if ws_package.contains("publish") {
        bad.push("Cargo.toml: `publish` in [workspace.package]".to_owned());
    }
    // CI packages every library crate: the workspace less the unpublished members.
    let ci = read(&root.join(".ci/run"));
    if !ci.contains("cargo package --workspace") {
        bad.push(".ci/run: no `cargo package --workspace` step".to_owned());
    }
    for dir in members() {
        let toml = read(&dir.join("Cargo.toml"));
        let name = toml
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_default()
            .to_owned();
        let unpublished = toml.contains("\npublish = false\n");
        if UNPUBLISHED.contains(&name.as_str()) {
            if !unpublished {
                bad.push(format!("{name}: needs `publish = false`"));
            }
            if !ci.contains(&format!("--exclude {name}")) {
                bad.push(format!(".ci/run: cargo package does not exclude {name}"));
            }
            continue;
        }
        if unpublished || toml.contains("publish.workspace") {
            bad.push(format!("{name}: a library crate is published"));
        }
        for needle in [
            "description = \"".to_owned(),
            "readme = \"README.md\"".to_owned(),
            format!("documentation = \"https://docs.rs/{name}\""),
            "keywords = [\"".to_owned(),
            "categories = [\"".to_owned(),
            "[package.metadata.docs.rs]\nall-features = true".to_owned(),
        ] {
            if !toml.contains(&needle) {
                bad.push(format!("{name}: Cargo.toml lacks {needle:?}"));
            }
        }
        let lib = read(&dir.join("src/lib.rs"));
        if !lib.contains("#![cfg_attr(docsrs, feature(doc_cfg))]") {
            bad.push(format!(
                "{name}: src/lib.rs lacks #![cfg_attr(docsrs, feature(doc_cfg))]"
            ));
        }
        let readme = read(&dir.join("README.md"));
        if !readme.contains("## Cargo features") {
            bad.push(format!("{name}: README.md has no \"## Cargo features\""));
        }
        // Every feature the manifest declares is named in the README.
        let features = toml
            .split("\n[features]\n")
            .nth(1)
            .and_then(|s| s.split("\n[").next())
            .unwrap_or_default();
        for f in features
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
            .filter(|k| *k != "default")
        {
            if !readme.contains(&format!("`{f}`")) {
                bad.push(format!("{name}: feature `{f}` not in README.md"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The internal `[dependencies]` of a manifest: the `mp-*` and `multiprocessing` entries of
/// its `[dependencies]` table (not dev- or build-dependencies).
fn internal_dependencies(toml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or_default()
            .trim();
        if name.starts_with("mp-") || name == "multiprocessing" {
            out.push(name.to_owned());
        }
    }
    out
}

#[test]
fn the_readme_diagram_draws_every_crate_dependency() {
    // README.md "## Architecture" draws the crates as a mermaid flowchart, one `a --> b` line
    // per `[dependencies]` entry (node ids use `_` for `-`). mp-testkit is a dev-dependency
    // helper and is not drawn.
    let readme = read(&project_root().join("README.md"));
    let chart = readme
        .split("## Architecture")
        .nth(1)
        .and_then(|s| s.split("```mermaid").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("README.md: no mermaid chart under ## Architecture");
    let mut drawn: Vec<(String, String)> = chart
        .lines()
        .filter_map(|l| l.split_once("-->"))
        .map(|(a, b)| (a.trim().replace('_', "-"), b.trim().replace('_', "-")))
        .collect();
    let mut real = Vec::new();
    for dir in members()
        .into_iter()
        .filter(|d| d.starts_with(project_root().join("crates")))
    {
        let toml = read(&dir.join("Cargo.toml"));
        let name = toml
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_default()
            .to_owned();
        if name == "mp-testkit" {
            continue;
        }
        for dep in internal_dependencies(&toml) {
            real.push((name.clone(), dep));
        }
    }
    drawn.sort();
    real.sort();
    let missing: Vec<String> = real
        .iter()
        .filter(|e| !drawn.contains(e))
        .map(|(a, b)| format!("{a} --> {b}"))
        .collect();
    let extra: Vec<String> = drawn
        .iter()
        .filter(|e| !real.contains(e))
        .map(|(a, b)| format!("{a} --> {b}"))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md diagram and the manifests disagree: not drawn {missing:?}; drawn but not a \
         dependency {extra:?}"
    );
}

#[test]
fn internal_dependencies_read_only_the_dependencies_table() {
    let toml = "[package]\nname = \"x\"\n\n[dependencies]\nmp-os.workspace = true\nlibc = \"1\"\n\
                mp-sync = { workspace = true }\n\n[dev-dependencies]\nmp-testkit.workspace = true\n";
    assert_eq!(internal_dependencies(toml), ["mp-os", "mp-sync"]);
}
