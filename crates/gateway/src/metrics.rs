//! `/metrics` in the Prometheus text format.
//!
//! Labels are backend and model names from the configuration and the routing decision, and
//! outcome words; never keys, tokens or request content.

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

use crate::breaker::View;

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
    pub(crate) time_to_first_token: Family<HopLabels, Histogram, fn() -> Histogram>,
    pub(crate) upstream_duration: Family<HopLabels, Histogram, fn() -> Histogram>,
    pub(crate) gateway_overhead: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gateway");
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
        Self {
            registry,
            requests,
            attempts,
            failovers,
            circuit,
            in_flight,
            time_to_first_token,
            upstream_duration,
            gateway_overhead,
        }
    }
}

impl Metrics {
    /// The text exposition, with the breakers' current states.
    pub(crate) fn render(&self, breakers: &[View], in_flight: usize) -> String {
        for view in breakers {
            self.circuit
                .get_or_create(&HopLabels {
                    backend: view.backend.clone(),
                    model: view.model.clone(),
                })
                .set(view.state.gauge());
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
