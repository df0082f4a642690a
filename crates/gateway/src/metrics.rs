//! `/metrics` in the Prometheus text format.
//!
//! Labels are backend names, key names and model labels from the configuration, and outcome
//! words; never key values, tokens or request content. A model label is a model the
//! configuration names, or the configured pattern a model matched ([`ModelLabels`]), so a client
//! cannot create series at will by asking for made-up models under a `*` pattern.
//!
//! The metric families outlive a configuration reload ([`Metrics::share`]): counters never
//! restart because a file was reloaded.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use wildmatch::WildMatch;

use crate::{breaker::View, config::Config};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) endpoint: String,
    pub(crate) status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttemptLabels {
    pub(crate) backend: String,
    pub(crate) model: String,
    pub(crate) outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FailoverLabels {
    pub(crate) from: String,
    pub(crate) to: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HopLabels {
    pub(crate) backend: String,
    pub(crate) model: String,
}

/// `gateway_tokens_total`: tokens by kind (input, output, reasoning, cached), key name, model
/// label and backend.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    pub(crate) kind: &'static str,
    pub(crate) key: String,
    pub(crate) model: String,
    pub(crate) backend: String,
}

/// A bounded endpoint label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    pub(crate) endpoint: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 100 µs .. ~100 s.
    Histogram::new(exponential_buckets(0.0001, 2.5, 16))
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) attempts: Family<AttemptLabels, Counter>,
    pub(crate) failovers: Family<FailoverLabels, Counter>,
    pub(crate) circuit: Family<HopLabels, Gauge>,
    pub(crate) in_flight: Gauge,
    /// Whether the shared state is reachable.
    pub(crate) state_up: Gauge,
    pub(crate) time_to_first_token: Family<HopLabels, Histogram, fn() -> Histogram>,
    pub(crate) upstream_duration: Family<HopLabels, Histogram, fn() -> Histogram>,
    pub(crate) gateway_overhead: Histogram,
    /// Tokens of routed answers.
    pub(crate) tokens: Family<TokenLabels, Counter>,
    /// From the request to the end of its answer, streams included.
    pub(crate) request_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    /// Usage records dropped because the writer's queue was full.
    pub(crate) usage_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        crate::commit::rescue::register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let failovers = Family::<FailoverLabels, Counter>::default();
        let circuit = Family::<HopLabels, Gauge>::default();
        let in_flight = Gauge::default();
        let time_to_first_token =
            Family::<HopLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let upstream_duration =
            Family::<HopLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let gateway_overhead = seconds_histogram();
        let tokens = Family::<TokenLabels, Counter>::default();
        let request_duration =
            Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let usage_dropped = Counter::default();
        registry.register(
            "requests",
            "Client requests by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "attempts",
            "Upstream attempts by backend, model and outcome",
            attempts.clone(),
        );
        registry.register(
            "failovers",
            "Moves from one hop to the next",
            failovers.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            circuit.clone(),
        );
        registry.register("in_flight", "Requests being answered", in_flight.clone());
        registry.register(
            "time_to_first_token_seconds",
            "From the request to the first content sent to the client",
            time_to_first_token.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "One attempt, until the upstream answered (or, for streams, sent its first content)",
            upstream_duration.clone(),
        );
        registry.register(
            "overhead_seconds",
            "Time the gateway itself added before the answer: the request's time to its head minus the attempts' time",
            gateway_overhead.clone(),
        );
        let mut metrics = Self {
            registry,
            requests,
            attempts,
            failovers,
            circuit,
            in_flight,
            time_to_first_token,
            upstream_duration,
            gateway_overhead,
            tokens,
            request_duration,
            usage_dropped,
            state_up: Gauge::default(),
        };
        metrics.register_operations();
        metrics
    }
}

impl Metrics {
    fn register_operations(&mut self) {
        self.registry.register(
            "tokens",
            "Tokens of routed answers by kind (input, output, reasoning, cached), key name, model and backend",
            self.tokens.clone(),
        );
        self.registry.register(
            "request_duration_seconds",
            "From the request to the end of its answer, the whole stream included",
            self.request_duration.clone(),
        );
        self.registry.register(
            "usage_dropped",
            "Usage records dropped because the writer's queue was full",
            self.usage_dropped.clone(),
        );
        self.registry.register(
            "state_up",
            "Whether the shared state is reachable: 0 while its Redis is down (1 for the local state)",
            self.state_up.clone(),
        );
    }

    /// The same metric families under a registry of their own, for the state built from a
    /// reloaded configuration: counts go on where they were.
    pub(crate) fn share(&self) -> Self {
        let mut registry = Registry::with_prefix("gateway");
        registry.register(
            "requests",
            "Client requests by endpoint and status",
            self.requests.clone(),
        );
        registry.register(
            "attempts",
            "Upstream attempts by backend, model and outcome",
            self.attempts.clone(),
        );
        registry.register(
            "failovers",
            "Moves from one hop to the next",
            self.failovers.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            self.circuit.clone(),
        );
        registry.register(
            "in_flight",
            "Requests being answered",
            self.in_flight.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "From the request to the first content sent to the client",
            self.time_to_first_token.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "One attempt, until the upstream answered (or, for streams, sent its first content)",
            self.upstream_duration.clone(),
        );
        registry.register(
            "overhead_seconds",
            "Time the gateway itself added before the answer: the request's time to its head minus the attempts' time",
            self.gateway_overhead.clone(),
        );
        let mut shared = Self {
            registry,
            requests: self.requests.clone(),
            attempts: self.attempts.clone(),
            failovers: self.failovers.clone(),
            circuit: self.circuit.clone(),
            in_flight: self.in_flight.clone(),
            time_to_first_token: self.time_to_first_token.clone(),
            upstream_duration: self.upstream_duration.clone(),
            gateway_overhead: self.gateway_overhead.clone(),
            tokens: self.tokens.clone(),
            request_duration: self.request_duration.clone(),
            usage_dropped: self.usage_dropped.clone(),
            state_up: self.state_up.clone(),
        };
        shared.register_operations();
        shared
    }

    /// The text exposition, with the breakers' current states: per backend and model label,
    /// the worst state of the models under that label.
    pub(crate) fn render(
        &self,
        breakers: &[View],
        in_flight: usize,
        labels: &ModelLabels,
        state_up: bool,
    ) -> String {
        self.state_up.set(i64::from(state_up));
        let mut states: std::collections::HashMap<HopLabels, i64> =
            std::collections::HashMap::new();
        for view in breakers {
            let hop = HopLabels {
                backend: view.backend.clone(),
                model: labels.label(&view.model),
            };
            // Open is the worst state, then half-open, then closed.
            let rank = |gauge: i64| match gauge {
                1 => 2,
                2 => 1,
                _ => 0,
            };
            let state = states.entry(hop).or_default();
            if rank(view.state.gauge()) > rank(*state) {
                *state = view.state.gauge();
            }
        }
        for (hop, state) in states {
            self.circuit.get_or_create(&hop).set(state);
        }
        self.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The Prometheus text format 0.0.4 of an OpenMetrics exposition, for scrapers that do not ask
/// for OpenMetrics: a counter is declared under its sample name (`_total`), `# UNIT` and `# EOF`
/// lines and `_created` samples are left out, and `unknown` is `untyped`.
pub(crate) fn text_004(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| *kind == "counter")
        .map(|(name, _)| name)
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let comment = ["# TYPE ", "# HELP "]
            .into_iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (prefix, rest)));
        match comment {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = if prefix == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                };
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                let name = line.split(['{', ' ']).next().unwrap_or("");
                let created = name
                    .strip_suffix("_created")
                    .is_some_and(|base| counters.contains(base));
                if !created && !line.is_empty() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// Model labels bounded by the configuration: a model the configuration names (an alias, a
/// route's or `model_map`'s model, a pattern without wildcards) is its own label; any other
/// model is labelled with the first configured pattern it matches (`gemini-*`, `*`), else
/// `other`.
#[derive(Debug)]
pub(crate) struct ModelLabels {
    names: Vec<String>,
    patterns: Vec<(String, WildMatch)>,
}

impl ModelLabels {
    /// The labels of `config`.
    pub(crate) fn new(config: &Config) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut patterns: Vec<(String, WildMatch)> = Vec::new();
        let mut add = |text: &str| {
            if text.contains(['*', '?']) {
                if !patterns.iter().any(|(p, _)| p == text) {
                    patterns.push((text.to_owned(), WildMatch::new_case_insensitive(text)));
                }
            } else if !text.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(text)) {
                names.push(text.to_owned());
            }
        };
        for (alias, target) in &config.aliases {
            add(alias);
            add(target);
        }
        for route in &config.routes {
            route.models.iter().for_each(|m| add(m));
            route
                .chain
                .iter()
                .filter_map(|hop| hop.model.as_deref())
                .for_each(&mut add);
        }
        for backend in &config.backends {
            for (from, to) in &backend.model_map {
                add(from);
                add(to);
            }
            backend.models.iter().for_each(|m| add(m));
        }
        Self { names, patterns }
    }

    /// The label for `model`.
    pub(crate) fn label(&self, model: &str) -> String {
        if let Some(name) = self.names.iter().find(|n| n.eq_ignore_ascii_case(model)) {
            return name.clone();
        }
        self.patterns
            .iter()
            .find(|(_, pattern)| pattern.matches(model))
            .map_or_else(|| "other".to_owned(), |(text, _)| text.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded_by_the_configuration() {
        let config = Config::parse(
            "[backends.a]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodels = [\"gpt-4o\", \"gemini-*\"]\nmodel_map = { \"old\" = \"new-model\" }\n[aliases]\nfast = \"gpt-4o-mini\"\n",
            "t.toml",
            &|_| None,
        )
        .unwrap();
        let labels = ModelLabels::new(&config);
        assert_eq!(labels.label("GPT-4o"), "gpt-4o");
        assert_eq!(labels.label("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(labels.label("new-model"), "new-model");
        assert_eq!(labels.label("gemini-2.5-pro"), "gemini-*");
        assert_eq!(labels.label("gemini-made-up-9000"), "gemini-*");
        assert_eq!(labels.label("claude-x"), "other");
    }

    #[test]
    fn shared_metrics_count_on() {
        let first = Metrics::default();
        first
            .requests
            .get_or_create(&RequestLabels {
                endpoint: "x".to_owned(),
                status: "200".to_owned(),
            })
            .inc();
        first
            .tokens
            .get_or_create(&TokenLabels {
                kind: "input",
                key: "alice".to_owned(),
                model: "gpt-*".to_owned(),
                backend: "b".to_owned(),
            })
            .inc_by(7);
        let second = first.share();
        second
            .requests
            .get_or_create(&RequestLabels {
                endpoint: "x".to_owned(),
                status: "200".to_owned(),
            })
            .inc();
        let text = second.render(
            &[],
            0,
            &ModelLabels::new(&Config::embedded().unwrap()),
            true,
        );
        assert!(
            text.contains("gateway_requests_total{endpoint=\"x\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "gateway_tokens_total{kind=\"input\",key=\"alice\",model=\"gpt-*\",backend=\"b\"} 7"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_004_text_declares_counters_by_their_sample_names() {
        let metrics = Metrics::default();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                endpoint: "x".to_owned(),
                status: "200".to_owned(),
            })
            .inc();
        let open = metrics.render(
            &[],
            0,
            &ModelLabels::new(&Config::embedded().unwrap()),
            true,
        );
        assert!(open.contains("# TYPE gateway_requests counter"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
        let text = text_004(&open);
        assert!(
            text.contains("# TYPE gateway_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP gateway_requests_total "), "{text}");
        assert!(text.contains("gateway_requests_total{endpoint=\"x\",status=\"200\"} 1\n"));
        assert!(text.contains("# TYPE gateway_in_flight gauge\n"), "{text}");
        assert!(
            text.contains("# TYPE gateway_overhead_seconds histogram"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        // Every sample belongs to a declared family.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            assert!(
                declared.iter().any(|d| name == *d
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(*d))),
                "{name} is not declared: {text}"
            );
        }
    }
}
