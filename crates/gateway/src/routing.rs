//! Which backends serve a model, in which order, with which model name. A pure function of the
//! configuration and the requested model.
//!
//! 1. An alias is replaced by its target.
//! 2. The first route whose patterns match gives the chain: each hop names a backend and,
//!    optionally, the model to send (else the model after the backend's `model_map`).
//! 3. Without a route, every enabled backend whose `models` patterns match, by `priority`
//!    (then name), each with the model after its `model_map`.
//! 4. A chain never visits the same (backend, model) twice, and skips disabled backends.
//! 5. No hop: 404 `model_not_found`.

use wildmatch::WildMatch;

use gateway_core::{ErrorKind, GatewayError};

use crate::config::{Condition, Config, default_fallback_on};

/// One step of a chain: a backend (by index into `Config::backends`) and the model to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    pub(crate) backend: usize,
    pub(crate) model: String,
}

/// The chain for one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// The model after alias resolution.
    pub(crate) model: String,
    pub(crate) hops: Vec<Hop>,
    pub(crate) fallback_on: Vec<Condition>,
}

/// Model patterns compiled once, in the order of `Config::routes` and `Config::backends`.
#[derive(Debug)]
pub(crate) struct Patterns {
    routes: Vec<Vec<WildMatch>>,
    backends: Vec<Vec<WildMatch>>,
}

impl Patterns {
    pub(crate) fn new(config: &Config) -> Self {
        let compile = |patterns: &[String]| {
            patterns
                .iter()
                .map(|p| WildMatch::new_case_insensitive(p))
                .collect()
        };
        Self {
            routes: config.routes.iter().map(|r| compile(&r.models)).collect(),
            backends: config.backends.iter().map(|b| compile(&b.models)).collect(),
        }
    }
}

/// The chain for `requested`.
pub(crate) fn plan(
    config: &Config,
    patterns: &Patterns,
    requested: &str,
) -> Result<Plan, GatewayError> {
    let model = config
        .aliases
        .get(requested)
        .cloned()
        .unwrap_or_else(|| requested.to_owned());
    let mapped = |index: usize| {
        let backend = &config.backends[index];
        backend
            .model_map
            .get(&model)
            .cloned()
            .unwrap_or_else(|| model.clone())
    };
    let route = config
        .routes
        .iter()
        .zip(&patterns.routes)
        .find(|(_, compiled)| compiled.iter().any(|p| p.matches(&model)))
        .map(|(route, _)| route);
    let (candidates, fallback_on): (Vec<Hop>, Vec<Condition>) = match route {
        Some(route) => (
            route
                .chain
                .iter()
                .filter_map(|hop| {
                    let index = config.backends.iter().position(|b| b.name == hop.backend)?;
                    Some(Hop {
                        backend: index,
                        model: hop.model.clone().unwrap_or_else(|| mapped(index)),
                    })
                })
                .collect(),
            route.fallback_on.clone(),
        ),
        None => {
            let mut indices: Vec<usize> = (0..config.backends.len())
                .filter(|i| patterns.backends[*i].iter().any(|p| p.matches(&model)))
                .collect();
            indices.sort_by_key(|i| (config.backends[*i].priority, &config.backends[*i].name));
            (
                indices
                    .into_iter()
                    .map(|i| Hop {
                        backend: i,
                        model: mapped(i),
                    })
                    .collect(),
                default_fallback_on(),
            )
        }
    };
    let mut hops: Vec<Hop> = Vec::with_capacity(candidates.len());
    for hop in candidates {
        if config.backends[hop.backend].enabled && !hops.contains(&hop) {
            hops.push(hop);
        }
    }
    if hops.is_empty() {
        return Err(GatewayError::new(
            ErrorKind::ModelNotFound,
            format!("no enabled backend serves the model {requested:?}"),
        )
        .with_param("model")
        .with_code("model_not_found"));
    }
    Ok(Plan {
        model,
        hops,
        fallback_on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[backends.antigravity]
kind = "antigravity"
priority = 1
models = ["gemini-*", "claude-*"]

[backends.copilot]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
priority = 2
models = ["gpt-*", "claude-*"]
model_map = { "claude-3.5-sonnet" = "claude-sonnet-4" }

[backends.kiro]
kind = "openai"
base_url = "http://127.0.0.1:2/v1"
priority = 3
models = ["claude-*"]

[backends.off]
kind = "openai"
base_url = "http://127.0.0.1:3/v1"
models = ["*"]
enabled = false

[[routes]]
models = ["claude-sonnet-4.5*", "claude-sonnet-4-5*"]
chain = ["kiro", { backend = "antigravity", model = "claude-sonnet-4-5" }, "off", { backend = "copilot", model = "claude-sonnet-4" }, "kiro"]

[aliases]
sonnet = "claude-sonnet-4.5"
fast = "gpt-4o-mini"
"#;

    fn check(requested: &str, expected: &[(&str, &str)]) {
        let config = Config::parse(CONFIG, "test.toml", &|_| None).unwrap();
        let plan = plan(&config, &Patterns::new(&config), requested).unwrap();
        let got: Vec<(&str, &str)> = plan
            .hops
            .iter()
            .map(|h| (config.backends[h.backend].name.as_str(), h.model.as_str()))
            .collect();
        assert_eq!(got, expected, "{requested}");
    }

    #[test]
    fn routes_aliases_patterns_and_priorities() {
        // A route chain with per-hop model rewrite; disabled and repeated hops are skipped.
        check(
            "claude-sonnet-4.5",
            &[
                ("kiro", "claude-sonnet-4.5"),
                ("antigravity", "claude-sonnet-4-5"),
                ("copilot", "claude-sonnet-4"),
            ],
        );
        check(
            "Claude-Sonnet-4-5-20250929",
            &[
                ("kiro", "Claude-Sonnet-4-5-20250929"),
                ("antigravity", "claude-sonnet-4-5"),
                ("copilot", "claude-sonnet-4"),
            ],
        );
        // An alias resolves before routing.
        check(
            "sonnet",
            &[
                ("kiro", "claude-sonnet-4.5"),
                ("antigravity", "claude-sonnet-4-5"),
                ("copilot", "claude-sonnet-4"),
            ],
        );
        // Without a route: every matching backend by priority, with its model map.
        check(
            "claude-3.5-sonnet",
            &[
                ("antigravity", "claude-3.5-sonnet"),
                ("copilot", "claude-sonnet-4"),
                ("kiro", "claude-3.5-sonnet"),
            ],
        );
        check("gemini-3-pro", &[("antigravity", "gemini-3-pro")]);
        check("fast", &[("copilot", "gpt-4o-mini")]);
    }

    #[test]
    fn nothing_matching_is_model_not_found() {
        let config = Config::parse(CONFIG, "test.toml", &|_| None).unwrap();
        let err = plan(&config, &Patterns::new(&config), "llama-3").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ModelNotFound);
        assert_eq!(err.status().as_u16(), 404);
        assert_eq!(err.code(), Some("model_not_found"));
    }
}
