use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "COPILOT_KEY" => Some("sk-copilot".into()),
        "PORT" => Some("8080".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, "gateway.toml", &env)
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect()
}

const FULL: &str = r#"
[server]
listen = "0.0.0.0:${PORT}"
api_keys = ["k1", "${MISSING_KEY:-}"]
max_body = "8MiB"
shutdown_grace = "5s"

[antigravity]
credentials_dir = "/var/lib/gateway/accounts"
selection = "sticky"
max_concurrency_per_account = 2
outbound_proxy = "socks5://127.0.0.1:1080"

[backends.antigravity]
kind = "antigravity"
proxy_url = "http://127.0.0.1:7862/antigravity/v1"
priority = 1
models = ["gemini-*", "claude-*"]

[backends.copilot]
kind = "openai"
base_url = "http://127.0.0.1:8141/v1/"
api_key = "${COPILOT_KEY}"
priority = 2
models = ["gpt-*", "claude-*"]
model_map = { "claude-3.5-sonnet" = "claude-sonnet-4" }
forward_headers = ["x-request-id", "openai-beta"]
first_byte_timeout = "20s"
timeout = "2m"

[[routes]]
models = ["claude-sonnet-4.5*"]
chain = ["copilot", { backend = "antigravity", model = "claude-sonnet-4-5" }]
fallback_on = [429, 503, "timeout"]

[aliases]
sonnet = "claude-sonnet-4.5"
"#;

#[test]
fn a_full_file_resolves() {
    let config = parse(FULL).unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(
        config.server.api_keys.len(),
        1,
        "an empty substituted key is dropped"
    );
    assert_eq!(config.server.max_body, 8 << 20);
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(5));
    assert_eq!(config.antigravity.selection, Selection::Sticky);
    let copilot = config.backend("copilot").unwrap();
    assert_eq!(
        copilot.base_url.as_deref(),
        Some("http://127.0.0.1:8141/v1")
    );
    assert_eq!(copilot.api_key.expose(), "sk-copilot");
    assert_eq!(copilot.timeouts.first_byte, Some(Duration::from_secs(20)));
    assert_eq!(copilot.timeouts.total, Some(Duration::from_secs(120)));
    assert_eq!(copilot.model_map["claude-3.5-sonnet"], "claude-sonnet-4");
    assert_eq!(
        config.routes[0].chain[1],
        HopConfig {
            backend: "antigravity".into(),
            model: Some("claude-sonnet-4-5".into())
        }
    );
    assert_eq!(
        config.routes[0].fallback_on,
        vec![
            Condition::Status(429),
            Condition::Status(503),
            Condition::Named(NamedCondition::Timeout)
        ]
    );
    assert_eq!(config.aliases["sonnet"], "claude-sonnet-4.5");
}

#[test]
fn the_printed_configuration_hides_secrets() {
    let printed = parse(FULL).unwrap().to_toml();
    assert!(
        !printed.contains("sk-copilot") && !printed.contains("\"k1\""),
        "{printed}"
    );
    assert!(printed.contains("[redacted]"));
    assert!(printed.contains("max_body = \"8MiB\""), "{printed}");
    // The output is itself valid TOML.
    printed.parse::<toml::Table>().unwrap();
}

#[test]
fn the_embedded_default_serves_antigravity_on_loopback() {
    let config = Config::embedded().unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:7861");
    assert!(config.server.api_keys.is_empty());
    assert_eq!(
        config.antigravity.credentials_dir,
        PathBuf::from("data/antigravity")
    );
    assert_eq!(config.backends.len(), 1);
    assert_eq!(config.backends[0].kind, BackendKind::Antigravity);
}

#[test]
fn unknown_keys_name_file_line_and_key() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[backends.copilot]\nkind = \"openai\"\nbase_url = \"http://x\"\ntimeot = \"5s\"\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("gateway.toml:7: backends.copilot.timeot: unknown key `timeot`"),
        "{errors:?}"
    );
}

#[test]
fn unset_variables_name_file_line_and_key() {
    let text = "[backends.copilot]\nkind = \"openai\"\nbase_url = \"http://x\"\napi_key = \"${COPILOT_API_KEY}\"\n";
    assert_eq!(
        errors(text),
        [
            "gateway.toml:4: backends.copilot.api_key: environment variable COPILOT_API_KEY is not set (write ${COPILOT_API_KEY:-default} for an optional one)"
        ]
    );
}

#[test]
fn wrong_types_and_values_are_reported() {
    let cases = [
        (
            "[server]\nmax_in_flight = \"many\"\n",
            "gateway.toml:2: server.max_in_flight: invalid type",
        ),
        (
            "[server]\nmax_body = \"lots\"\n",
            "gateway.toml:2: server.max_body: \"lots\" is not a size",
        ),
        (
            "[server]\nshutdown_grace = \"soon\"\n",
            "gateway.toml:2: server.shutdown_grace: \"soon\" is not a duration",
        ),
        (
            "[server]\nlisten = \"nowhere\"\n",
            "gateway.toml:2: server.listen: \"nowhere\" is not an address",
        ),
        (
            "[backends.x]\nkind = \"grpc\"\n",
            "gateway.toml:2: backends.x.kind: \"grpc\" is not a backend kind",
        ),
        (
            "[backends.x]\nkind = \"openai\"\n",
            "gateway.toml:2: backends.x.base_url: an openai backend needs base_url",
        ),
        (
            "[backends.x]\nkind = \"anthropic\"\n",
            "gateway.toml:2: backends.x.base_url: an anthropic backend needs base_url",
        ),
        (
            "[backends.x]\nkind = \"anthropic\"\nbase_url = \"http://x\"\nauth = \"basic\"\n",
            "gateway.toml:4: backends.x.auth: \"basic\" is not a way to send the key",
        ),
        (
            "[backends.x]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n",
            "gateway.toml:3: backends.x.base_url: \"ftp://x\" is not an http",
        ),
        (
            "[[routes]]\nmodels = [\"*\"]\nchain = [\"ghost\"]\n",
            "gateway.toml:3: routes[0].chain: no backend is named \"ghost\"",
        ),
        (
            "[backends.a]\nkind = \"antigravity\"\n[[routes]]\nmodels = [\"*\"]\nchain = [\"a\"]\nfallback_on = [200, \"sometimes\"]\n",
            "gateway.toml:6: routes[0].fallback_on: 200 is not an error status",
        ),
        (
            "[antigravity]\nselection = \"random\"\n",
            "gateway.toml:2: antigravity.selection: \"random\" is not",
        ),
        ("[server\n", "gateway.toml:1: (syntax)"),
        ("value = 1\n", "gateway.toml:1: value: unknown key `value`"),
    ];
    for (text, expected) in cases {
        let errors = errors(text);
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{text:?}: {errors:?}"
        );
    }
}

#[test]
fn substitution_only_touches_strings_and_keeps_types() {
    let check = |input: &str, expected: Result<&str, &str>| {
        let got = substitute(input, &env);
        match expected {
            Ok(text) => assert_eq!(got.as_deref(), Ok(text), "{input}"),
            Err(fragment) => assert!(got.unwrap_err().contains(fragment), "{input}"),
        }
    };
    check("plain", Ok("plain"));
    check("${COPILOT_KEY}", Ok("sk-copilot"));
    check("a-${PORT}-b", Ok("a-8080-b"));
    check("${NOPE:-fallback}", Ok("fallback"));
    check("${EMPTY:-fallback}", Ok(""));
    check("${NOPE:-}", Ok(""));
    check("cost $5", Ok("cost $5"));
    check("$${LITERAL}", Ok("${LITERAL}"));
    check("${NOPE}", Err("NOPE is not set"));
    check("${unterminated", Err("unterminated"));
    check("${bad name}", Err("not a variable name"));
    // A number-looking substitution stays a string: `max_in_flight` cannot be written with one.
    let errors = errors("[server]\nmax_in_flight = \"${PORT}\"\n");
    assert!(errors[0].contains("invalid type"), "{errors:?}");
}

#[test]
fn the_dashboard_follows_the_listen_address_unless_the_file_sets_it() {
    let parse = |text: &str| Config::parse(text, "t.toml", &|_| None).unwrap();
    let public: std::net::SocketAddr = "0.0.0.0:7861".parse().unwrap();
    let loopback = parse("[server]\nlisten = \"127.0.0.1:7861\"\n");
    assert!(loopback.server().dashboard);
    assert!(!loopback.with_listen(public).server().dashboard);
    let set = parse("[server]\nlisten = \"127.0.0.1:7861\"\ndashboard = true\n");
    assert!(set.with_listen(public).server().dashboard);
    let open = parse("[server]\nlisten = \"0.0.0.0:7861\"\n");
    assert!(!open.server().dashboard);
}
