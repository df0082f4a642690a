//! The application state built from a [`Config`]: backends with their transports, the
//! in-process Antigravity service, and the counters the admin view shows.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use antigravity_service::{AccountPool, AccountStore, PoolConfig, Service, ServiceConfig};
use gateway_core::{ErrorKind, GatewayError, openai::ModelList};
use gateway_proxy::{Client, ClientConfig, Forwarder, HeaderPolicy};

use crate::{
    breaker::Breakers,
    budget::RetryBudget,
    config::{BackendConfig, BackendKind, Config},
    metrics::Metrics,
    routing::Patterns,
};

/// The in-process Antigravity service as the gateway runs it.
pub(crate) type Antigravity = Service<Client, AccountPool<Client>>;

/// One configured backend.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) config: BackendConfig,
    /// `openai`: its upstream; `antigravity`: its `proxy_url`, when configured.
    pub(crate) forwarder: Option<Forwarder>,
    pub(crate) stats: Stats,
}

/// Counters per backend.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Stats {
    pub(crate) fn record(&self, outcome: Result<(), &GatewayError>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = outcome {
            self.failures.fetch_add(1, Ordering::Relaxed);
            let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
            *last = Some(err.message().chars().take(300).collect());
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: Config,
    pub(crate) backends: Vec<Backend>,
    pub(crate) antigravity: Arc<Antigravity>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) models: Mutex<Option<(tokio::time::Instant, ModelList)>>,
    pub(crate) patterns: Patterns,
    pub(crate) breakers: Breakers,
    pub(crate) budget: RetryBudget,
    pub(crate) metrics: Metrics,
    /// Fired when the shutdown grace period is over: streams still running end with the
    /// terminal error event.
    pub(crate) closing: tokio_util::sync::CancellationToken,
}

impl App {
    /// Build the state; account-file problems are logged, not fatal.
    pub(crate) fn new(config: Config) -> Result<Self, GatewayError> {
        let backends = config
            .backends
            .iter()
            .map(|backend| {
                let url = match backend.kind {
                    BackendKind::Openai => backend.base_url.as_deref(),
                    BackendKind::Antigravity => backend.proxy_url.as_deref(),
                };
                let forwarder = url
                    .map(|url| {
                        let client = Client::new(ClientConfig {
                            connect_timeout: backend.connect_timeout,
                            proxy: backend.outbound_proxy.clone(),
                            ..ClientConfig::default()
                        })?;
                        let policy = HeaderPolicy::new()
                            .api_key(backend.api_key.clone())
                            .forward_client_auth(backend.forward_client_auth)
                            .forward_headers(&backend.forward_headers);
                        Forwarder::new(client, url, policy)
                    })
                    .transpose()?;
                Ok(Backend {
                    config: backend.clone(),
                    forwarder,
                    stats: Stats::default(),
                })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let antigravity = Arc::new(antigravity(&config)?);
        let patterns = Patterns::new(&config);
        Ok(Self {
            patterns,
            config,
            backends,
            antigravity,
            in_flight: AtomicUsize::new(0),
            models: Mutex::new(None),
            breakers: Breakers::default(),
            budget: RetryBudget::default(),
            metrics: Metrics::default(),
            closing: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Count a request in flight, or refuse it fast at the cap.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<InFlight, GatewayError> {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = InFlight(self.clone());
        if now > self.config.server.max_in_flight {
            return Err(GatewayError::new(
                ErrorKind::Overloaded,
                format!(
                    "the gateway is at its limit of {} requests in flight",
                    self.config.server.max_in_flight
                ),
            ));
        }
        Ok(guard)
    }
}

/// A request in flight; dropping it (when the response body ends) counts it out.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<App>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn antigravity(config: &Config) -> Result<Antigravity, GatewayError> {
    let settings = &config.antigravity;
    let client = Client::new(ClientConfig {
        proxy: settings.outbound_proxy.clone(),
        ..ClientConfig::default()
    })?;
    let pool_config = PoolConfig {
        selection: settings.selection,
        max_concurrency_per_account: settings.max_concurrency_per_account,
        token_url: settings.token_url.clone(),
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        base_url: settings.base_urls.first().cloned().unwrap_or_default(),
        ..PoolConfig::default()
    };
    let (pool, problems) = AccountPool::open(
        client.clone(),
        pool_config,
        AccountStore::new(&settings.credentials_dir),
    );
    for problem in problems {
        tracing::warn!(%problem, "skipped an account file");
    }
    tracing::info!(
        target: "gateway::startup",
        accounts = pool.len(),
        dir = %settings.credentials_dir.display(),
        "antigravity accounts loaded"
    );
    let service_config = ServiceConfig {
        base_urls: settings.base_urls.clone(),
        user_agent: settings.user_agent.clone(),
        timeouts: settings.timeouts,
        short_retry_wait: settings.short_retry_wait,
        ..ServiceConfig::default()
    };
    Ok(Service::new(client, pool, service_config))
}
