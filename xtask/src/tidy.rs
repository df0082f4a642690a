//! Structural checks that keep the repository honest:
//!
//! - dependency direction between workspace crates, read from `cargo metadata`;
//! - every crate under `crates/` named in `docs/ARCHITECTURE.md`, and every crate named there exists;
//! - every crate root opens with a `//!` doc;
//! - no pending insta snapshots (`*.snap.new`, `*.pending-snap`);
//! - no todo or unimplemented macros, and no ignore or should-panic attributes, in the code.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Allowed normal dependencies between workspace crates: (crate, what it may depend on).
/// Dev-dependencies may add `test-support`; nothing may depend on it normally.
const LAYERS: &[(&str, &[&str])] = &[
    ("gateway-core", &[]),
    ("gateway-proxy", &["gateway-core"]),
    ("antigravity-service", &["gateway-core"]),
    (
        "gateway",
        &["gateway-core", "gateway-proxy", "antigravity-service"],
    ),
    ("test-support", &["gateway-core"]),
    ("bench", &[]),
    ("tests", &[]),
    ("xtask", &[]),
];

/// Run every check, reporting all problems at once.
pub(crate) fn run(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let metadata = cargo_metadata(root)?;
    problems.extend(check_layers(&metadata));
    problems.extend(check_code_map(root)?);
    problems.extend(check_crate_docs(root)?);
    let files = source_files(root)?;
    problems.extend(check_pending_snapshots(&files));
    problems.extend(check_markers(&files)?);
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("{} tidy problem(s)", problems.len())
}

fn cargo_metadata(root: &Path) -> Result<Value> {
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid json")
}

/// Check the dependency table of `cargo metadata --no-deps` output against [`LAYERS`].
pub(crate) fn check_layers(metadata: &Value) -> Vec<String> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut problems = Vec::new();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or("?");
        let Some((_, allowed)) = LAYERS.iter().find(|(n, _)| *n == name) else {
            problems.push(format!(
                "crate `{name}` is not in the layer table of xtask/src/tidy.rs"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or("?");
            if !members.contains(dep_name) {
                continue;
            }
            let dev = dep["kind"].as_str() == Some("dev");
            let ok = allowed.contains(&dep_name)
                || (dev && (dep_name == "test-support" || name == "tests"))
                || (dev && dep_name == "gateway-core");
            if !ok {
                let kind = if dev { "dev-dependency" } else { "dependency" };
                problems.push(format!(
                    "`{name}` has a {kind} on `{dep_name}`, which breaks the layering in docs/ARCHITECTURE.md"
                ));
            }
        }
    }
    problems
}

fn check_code_map(root: &Path) -> Result<Vec<String>> {
    let architecture = fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .context("docs/ARCHITECTURE.md is missing")?;
    let on_disk: BTreeSet<String> = fs::read_dir(root.join("crates"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let named = crates_named(&architecture);
    let mut problems = Vec::new();
    for name in on_disk.difference(&named) {
        problems.push(format!(
            "crates/{name} is not described in the code map of docs/ARCHITECTURE.md"
        ));
    }
    for name in named.difference(&on_disk) {
        problems.push(format!(
            "docs/ARCHITECTURE.md describes crates/{name}, which does not exist"
        ));
    }
    Ok(problems)
}

/// Crate names written as `crates/<name>` in a document.
pub(crate) fn crates_named(text: &str) -> BTreeSet<String> {
    text.match_indices("crates/")
        .map(|(at, _)| {
            text[at + "crates/".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn check_crate_docs(root: &Path) -> Result<Vec<String>> {
    let mut roots: Vec<PathBuf> = vec![
        root.join("xtask/src/main.rs"),
        root.join("tests/it/main.rs"),
    ];
    for entry in fs::read_dir(root.join("crates"))? {
        let dir = entry?.path();
        for file in ["src/lib.rs", "src/main.rs"] {
            if dir.join(file).is_file() {
                roots.push(dir.join(file));
            }
        }
    }
    let mut problems = Vec::new();
    for path in roots {
        let text = fs::read_to_string(&path).unwrap_or_default();
        if !opens_with_crate_doc(&text) {
            problems.push(format!(
                "{} does not open with a `//!` crate doc",
                rel(root, &path)
            ));
        }
    }
    Ok(problems)
}

pub(crate) fn opens_with_crate_doc(text: &str) -> bool {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| line.starts_with("//!"))
}

fn check_pending_snapshots(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".snap.new") || name.ends_with(".pending-snap")
        })
        .map(|p| {
            format!(
                "pending snapshot {} (review it, then accept or delete)",
                p.display()
            )
        })
        .collect()
}

fn check_markers(files: &[PathBuf]) -> Result<Vec<String>> {
    // Spelled in pieces so this file does not flag itself.
    let markers = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("#[", "ignore"),
        concat!("#[", "should_panic"),
    ];
    let mut problems = Vec::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let text = fs::read_to_string(path)?;
        for (number, line) in text.lines().enumerate() {
            if let Some(marker) = markers.iter().find(|m| line.contains(*m)) {
                problems.push(format!(
                    "{}:{}: `{marker}` is not allowed",
                    path.display(),
                    number + 1
                ));
            }
        }
    }
    Ok(problems)
}

/// Every file below the root except build output and version control.
fn source_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "target" && name != ".git" && name != "node_modules" {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn package(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        json!({
            "name": name,
            "dependencies": deps.iter().map(|(n, kind)| json!({"name": n, "kind": kind})).collect::<Vec<_>>(),
        })
    }

    fn metadata(packages: Vec<Value>) -> Value {
        json!({ "packages": packages })
    }

    #[test]
    fn the_intended_layering_passes() {
        let table = metadata(vec![
            package("gateway-core", &[("serde", None), ("insta", Some("dev"))]),
            package(
                "gateway-proxy",
                &[("gateway-core", None), ("test-support", Some("dev"))],
            ),
            package(
                "antigravity-service",
                &[("gateway-core", None), ("test-support", Some("dev"))],
            ),
            package(
                "gateway",
                &[
                    ("gateway-core", None),
                    ("gateway-proxy", None),
                    ("antigravity-service", None),
                ],
            ),
            package("test-support", &[("gateway-core", None)]),
            package(
                "tests",
                &[("gateway", Some("dev")), ("test-support", Some("dev"))],
            ),
            package("xtask", &[("anyhow", None)]),
        ]);
        assert_eq!(check_layers(&table), Vec::<String>::new());
    }

    #[test]
    fn an_upward_edge_is_rejected() {
        let table = metadata(vec![
            package("gateway-core", &[("gateway-proxy", None)]),
            package("gateway-proxy", &[("gateway-core", None)]),
        ]);
        let problems = check_layers(&table);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`gateway-core` has a dependency on `gateway-proxy`"));
    }

    #[test]
    fn siblings_and_normal_test_support_edges_are_rejected() {
        let table = metadata(vec![
            package("gateway-core", &[]),
            package("antigravity-service", &[("gateway-proxy", Some("dev"))]),
            package("gateway-proxy", &[("test-support", None)]),
            package("test-support", &[]),
            package("mystery", &[]),
        ]);
        let problems = check_layers(&table);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems.iter().any(
                |p| p.contains("`antigravity-service` has a dev-dependency on `gateway-proxy`")
            )
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`gateway-proxy` has a dependency on `test-support`"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`mystery` is not in the layer table"))
        );
    }

    #[test]
    fn code_map_names_are_found() {
        let doc = "see `crates/gateway-core/` and crates/gateway, not crates/.";
        let names: Vec<String> = crates_named(doc).into_iter().collect();
        assert_eq!(names, ["gateway", "gateway-core"]);
    }

    #[test]
    fn crate_docs_must_open_the_file() {
        assert!(opens_with_crate_doc("\n//! doc\nfn x() {}"));
        assert!(!opens_with_crate_doc("// plain comment\n//! late"));
        assert!(!opens_with_crate_doc(""));
    }
}
