//! Structural checks that keep the repository honest:
//!
//! - dependency direction between workspace crates, read from `cargo metadata`;
//! - every crate under `crates/` named in `docs/ARCHITECTURE.md`, and every crate named there exists;
//! - every crate root opens with a `//!` doc;
//! - no pending insta snapshots (`*.snap.new`, `*.pending-snap`);
//! - no todo or unimplemented macros, and no ignore or should-panic attributes, in the code;
//! - every package inherits the workspace lints (`[lints] workspace = true`);
//! - every normal dependency of a crate is used in its sources (crates are consumed one by one:
//!   a dependency nobody uses is a cost for every consumer);
//! - every repository file a comment or document names (`docs/...`, `crates/...`, `xtask/...`)
//!   exists: the repository does not cite files it does not ship.
//!
//! The checks run as `cargo xtask tidy`, as a step of `cargo xtask test`, and as the
//! `the_repository_is_tidy` test of this crate.

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
    problems.extend(check_manifests(root, &metadata)?);
    problems.extend(check_references(root, &files)?);
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

/// Every package inherits the workspace lints, and uses every normal dependency it declares
/// (a dependency is used when its crate name appears in the package's sources).
fn check_manifests(root: &Path, metadata: &Value) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or("");
        let Some(manifest) = package["manifest_path"].as_str().map(PathBuf::from) else {
            continue;
        };
        let text = fs::read_to_string(&manifest)?;
        if !inherits_lints(&text) {
            problems.push(format!(
                "{}: add `[lints] workspace = true`",
                rel(root, &manifest)
            ));
        }
        let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
        let sources = rust_sources(&dir)?;
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            if !dependency["kind"].is_null() {
                continue;
            }
            let declared = dependency["rename"]
                .as_str()
                .or_else(|| dependency["name"].as_str())
                .unwrap_or("");
            if !uses_crate(&sources, declared) {
                problems.push(format!(
                    "{name} declares the dependency `{declared}` but never uses it"
                ));
            }
        }
    }
    Ok(problems)
}

pub(crate) fn inherits_lints(manifest: &str) -> bool {
    let mut in_lints = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

pub(crate) fn uses_crate(sources: &str, dependency: &str) -> bool {
    let ident = dependency.replace('-', "_");
    sources.match_indices(&ident).any(|(at, _)| {
        let before = sources[..at].chars().next_back();
        let after = sources[at + ident.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

/// All Rust sources of a package, concatenated.
fn rust_sources(dir: &Path) -> Result<String> {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&fs::read_to_string(&path)?);
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// Repository paths named in Rust comments and Markdown documents exist.
fn check_references(root: &Path, files: &[PathBuf]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for path in files.iter().filter(|p| {
        p.extension().is_some_and(|e| e == "rs" || e == "md")
            && !p
                .components()
                .any(|c| c.as_os_str() == "snapshots" || c.as_os_str() == "test_data")
            // This file's own examples.
            && !p.ends_with("xtask/src/tidy.rs")
    }) {
        let text = fs::read_to_string(path).unwrap_or_default();
        for reference in referenced_paths(&text) {
            if !root.join(&reference).exists() {
                problems.push(format!(
                    "{} names {reference}, which is not in the repository",
                    rel(root, path)
                ));
            }
        }
    }
    Ok(problems)
}

/// Paths written in backticks (or Markdown links) that start with a repository directory
/// and end in a file name with an extension: `docs/x.md`, `crates/a/src/b.rs`.
pub(crate) fn referenced_paths(text: &str) -> Vec<String> {
    const ROOTS: [&str; 5] = ["docs/", "crates/", "xtask/", "shared/", "contrib/"];
    let mut out = Vec::new();
    for (at, _) in text.match_indices(['`', '(']) {
        let rest = &text[at + 1..];
        let candidate: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
            .collect();
        let closed = rest[candidate.len()..].starts_with(['`', ')', '#']);
        let is_file = candidate
            .rsplit('/')
            .next()
            .is_some_and(|name| name.contains('.') && !name.ends_with('.'));
        if closed && is_file && ROOTS.iter().any(|r| candidate.starts_with(r)) {
            out.push(candidate);
        }
    }
    out
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

    /// The checks themselves, on this repository.
    #[test]
    fn the_repository_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Err(err) = run(&root) {
            panic!("{err:#}");
        }
    }

    #[test]
    fn manifests_inherit_lints_and_use_their_dependencies() {
        assert!(inherits_lints(
            "[package]\nname = \"x\"\n\n[lints]\nworkspace = true\n"
        ));
        assert!(!inherits_lints(
            "[package]\nname = \"x\"\n[lints.rust]\nunsafe_code = \"forbid\"\n"
        ));
        assert!(!inherits_lints("[workspace]\nworkspace = true\n"));
        let sources = "use gateway_core::Body;\nfn f() { serde_json::json!({}); }";
        assert!(uses_crate(sources, "gateway-core"));
        assert!(uses_crate(sources, "serde_json"));
        assert!(!uses_crate(sources, "serde"), "serde_json is not serde");
        assert!(!uses_crate(sources, "tracing"));
    }

    #[test]
    fn named_repository_files_are_found() {
        let text = "See `docs/configuration.md` and [the map](docs/ARCHITECTURE.md#code-map); \
                    `shared/docs/design.md` is cited, `crates/gateway` is a directory, \
                    `docs/` is a prefix and `xtask/src/main.rs` a file.";
        assert_eq!(
            referenced_paths(text),
            [
                "docs/configuration.md",
                "docs/ARCHITECTURE.md",
                "shared/docs/design.md",
                "xtask/src/main.rs"
            ]
        );
    }

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
