//! The effective configuration as a file `gateway check` accepts again.
//!
//! `Config` is shaped for the code (backends in a list, a `Timeouts` value per backend); the file
//! is shaped for people (`[backends.NAME]`, `first_byte_timeout`, a chain hop as a name or a
//! table). Printing the code's shape made `gateway check`'s output a schema of its own that
//! check refused. This turns the serialized `Config` into the documented file, section by
//! section in the documented order; every secret stays `[redacted]`.

use toml::{Table, Value};

use crate::config::Config;

/// The sections in the order `docs/configuration.md` documents them.
const SECTIONS: [&str; 9] = [
    "server",
    "keys",
    "state",
    "antigravity",
    "geminicli",
    "backends",
    "routes",
    "aliases",
    "logging",
];

/// `config` as TOML in the file's own schema, secrets redacted.
pub fn effective_toml(config: &Config) -> String {
    let mut whole = match Value::try_from(config) {
        Ok(Value::Table(table)) => table,
        Ok(_) => return "# cannot print the configuration\n".to_owned(),
        Err(err) => return format!("# cannot print the configuration: {err}\n"),
    };
    for pool in ["antigravity", "geminicli"] {
        if let Some(Value::Table(settings)) = whole.get_mut(pool) {
            flatten_timeouts(settings);
        }
    }
    if let Some(Value::Array(list)) = whole.remove("backends") {
        let mut backends = Table::new();
        for backend in list {
            let Value::Table(mut backend) = backend else {
                continue;
            };
            let Some(Value::String(name)) = backend.remove("name") else {
                continue;
            };
            flatten_timeouts(&mut backend);
            backends.insert(name, Value::Table(backend));
        }
        whole.insert("backends".to_owned(), Value::Table(backends));
    }
    if let Some(Value::Array(routes)) = whole.get_mut("routes") {
        for route in routes {
            if let Value::Table(route) = route
                && let Some(Value::Array(chain)) = route.get_mut("chain")
            {
                for hop in chain.iter_mut() {
                    // A hop without its own model is written as the backend's name.
                    if let Value::Table(table) = hop
                        && !table.contains_key("model")
                        && let Some(backend) = table.get("backend").cloned()
                    {
                        *hop = backend;
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for name in SECTIONS {
        let Some(value) = whole.remove(name) else {
            continue;
        };
        // An empty list would print as `routes = []`, a bare key that TOML puts into the
        // table printed before it; left out, it is the same default.
        if value.as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        let mut section = Table::new();
        section.insert(name.to_owned(), value);
        match toml::to_string_pretty(&section) {
            Ok(text) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&text);
            }
            Err(err) => out.push_str(&format!("# cannot print [{name}]: {err}\n")),
        }
    }
    out
}

/// `timeouts = { headers, first_byte, idle, total }` → the file's `first_byte_timeout`,
/// `idle_timeout` and `timeout` (the headers budget is the first-byte one).
fn flatten_timeouts(table: &mut Table) {
    let Some(Value::Table(timeouts)) = table.remove("timeouts") else {
        return;
    };
    for (from, to) in [
        ("first_byte", "first_byte_timeout"),
        ("idle", "idle_timeout"),
        ("total", "timeout"),
    ] {
        if let Some(value) = timeouts.get(from) {
            table.insert(to.to_owned(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[server]
listen = "127.0.0.1:7861"
api_keys = ["k1"]
admin_keys = ["root"]
max_body = "1MiB"

[[keys]]
name = "alice"
key = "alice-secret"
models = ["gpt-*"]
rpm = 5

[state]
usage_db = ""

[antigravity]
credentials_dir = "x/antigravity"
selection = "sticky"

[backends.antigravity]
kind = "antigravity"
models = ["*"]

[backends.kiro]
kind = "anthropic"
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-kiro"
first_byte_timeout = "1m 30s"
model_map = { "a" = "b" }

[[backends.kiro.rules]]
status = 400
body = "quota"
action = "failover"

[[routes]]
models = ["claude-*"]
chain = ["kiro", { backend = "antigravity", model = "claude-sonnet-4-5" }]
fallback_on = [429, "timeout"]

[aliases]
sonnet = "claude-sonnet-4-5"
"#;

    #[test]
    fn the_printed_configuration_is_accepted_again_and_prints_the_same() {
        let config = Config::parse(FULL, "full.toml", &|_| None).unwrap();
        let printed = effective_toml(&config);
        for secret in ["k1", "root", "alice-secret", "sk-kiro"] {
            assert!(!printed.contains(&format!("\"{secret}\"")), "{printed}");
        }
        let again = Config::parse(&printed, "printed.toml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(effective_toml(&again), printed);
        assert!(printed.contains("[backends.kiro]"), "{printed}");
        assert!(
            printed.contains("first_byte_timeout = \"1m 30s\""),
            "{printed}"
        );
        assert!(
            printed.contains(
                "\"kiro\",\n    { backend = \"antigravity\", model = \"claude-sonnet-4-5\" },"
            ),
            "{printed}"
        );
        assert_eq!(again.keys[0].rpm, Some(5));
        assert_eq!(again.state.usage_db, None);
        assert!(printed.starts_with("[server]"), "{printed}");
    }

    #[test]
    fn the_embedded_default_prints_as_a_file() {
        let config = Config::embedded().unwrap();
        let printed = effective_toml(&config);
        Config::parse(&printed, "printed.toml", &|_| None)
            .unwrap_or_else(|e| panic!("{e}\n{printed}"));
    }
}
