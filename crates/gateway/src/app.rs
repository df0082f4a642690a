//! The application state built from a [`Config`]: backends with their transports, the
//! in-process Antigravity service, and the counters the admin view shows.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use antigravity_service::{AccountPool, AccountStore, PoolConfig, Profile, Service, ServiceConfig};
use gateway_core::{
    Dialect, ErrorKind, GatewayError, Secret, openai::ModelList, responses::ReasoningSeal,
};
use gateway_proxy::{Client, ClientConfig, Forwarder, HeaderPolicy, KeyHeader};

use crate::{
    auth::Keys,
    breaker::Breakers,
    budget::RetryBudget,
    config::{Auth, BackendConfig, BackendKind, Config},
    dispatch::Facts,
    keys::KeyRing,
    metrics::{Metrics, ModelLabels},
    responses_store::ResponseStore,
    routing::Patterns,
    state::Shared,
};

/// The in-process Antigravity service as the gateway runs it.
pub(crate) type Antigravity = Service<Client, AccountPool<Client>>;

/// One configured backend: its settings, how it is reached, and its counters.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) config: BackendConfig,
    pub(crate) reach: Reach,
    pub(crate) stats: Stats,
}

/// How a backend is reached and which dialect it speaks: the one place a backend kind turns
/// into behaviour, so a new kind is one variant here and one arm in [`Reach::of`].
#[derive(Debug)]
pub(crate) enum Reach {
    /// An in-process Google pool (a direct call: Antigravity's or the Gemini CLI's), and its
    /// `proxy_url` for what the service does not serve or while it cannot.
    InProcess {
        profile: Profile,
        proxy: Option<Box<Forwarder>>,
    },
    /// An HTTP upstream through `gateway-proxy`, speaking `dialect`, and serving `native`
    /// other dialects itself.
    Http {
        upstream: KeyRing,
        dialect: Dialect,
        native: Vec<Dialect>,
    },
}

impl Reach {
    fn of(backend: &BackendConfig) -> Result<Self, GatewayError> {
        let client = Client::new(ClientConfig {
            connect_timeout: backend.connect_timeout,
            proxy: backend.outbound_proxy.clone(),
            ..ClientConfig::default()
        })?;
        let key_header = match backend.auth {
            Auth::Bearer => KeyHeader::Bearer,
            Auth::XApiKey => KeyHeader::XApiKey,
            Auth::XGoogApiKey => KeyHeader::XGoogApiKey,
        };
        let with_key = |url: &str, key: &Secret| {
            let policy = HeaderPolicy::new()
                .api_key(key.clone())
                .key_header(key_header)
                .forward_client_auth(backend.forward_client_auth)
                .forward_headers(&backend.forward_headers);
            Forwarder::new(client.clone(), url, policy)
        };
        let forwarder = |url: &str, _: KeyHeader| with_key(url, &backend.api_key);
        let url = backend.base_url.as_deref().unwrap_or_default();
        // One forwarder per key (the client and its pool are shared).
        let ring = |url: &str| -> Result<KeyRing, GatewayError> {
            let keys = std::iter::once(&backend.api_key)
                .filter(|k| !k.is_empty() || backend.api_keys.is_empty())
                .chain(&backend.api_keys);
            Ok(KeyRing::new(
                keys.map(|key| with_key(url, key))
                    .collect::<Result<_, _>>()?,
            ))
        };
        let in_process = |profile: Profile| -> Result<Self, GatewayError> {
            Ok(Self::InProcess {
                profile,
                proxy: backend
                    .proxy_url
                    .as_deref()
                    .map(|url| forwarder(url, key_header).map(Box::new))
                    .transpose()?,
            })
        };
        Ok(match backend.kind {
            BackendKind::Antigravity => in_process(Profile::Antigravity)?,
            BackendKind::Geminicli => in_process(Profile::GeminiCli)?,
            BackendKind::Openai => Self::Http {
                upstream: ring(url)?,
                dialect: Dialect::OpenAiChat,
                native: [
                    (backend.native_messages, Dialect::Anthropic),
                    (backend.native_responses, Dialect::Responses),
                ]
                .into_iter()
                .filter_map(|(on, dialect)| on.then_some(dialect))
                .collect(),
            },
            BackendKind::Anthropic => Self::Http {
                upstream: ring(url)?,
                dialect: Dialect::Anthropic,
                native: Vec::new(),
            },
            BackendKind::Gemini => Self::Http {
                upstream: ring(url)?,
                dialect: Dialect::Gemini,
                native: Vec::new(),
            },
        })
    }

    /// The HTTP way to this backend, when there is one (for calls that use no key's quota).
    pub(crate) fn forwarder(&self) -> Option<&Forwarder> {
        match self {
            Self::InProcess { proxy, .. } => proxy.as_deref(),
            Self::Http { upstream, .. } => upstream.any(),
        }
    }

    /// The HTTP way for one request: the next usable key of an HTTP upstream (reported back
    /// through [`Reach::report`]), or the `proxy_url`.
    pub(crate) fn pick(&self) -> Result<Option<(usize, &Forwarder)>, GatewayError> {
        match self {
            Self::InProcess { proxy, .. } => Ok(proxy.as_deref().map(|p| (0, p))),
            Self::Http { upstream, .. } => upstream.pick().map(Some),
        }
    }

    /// How many keys an HTTP upstream rotates (1 for the in-process backend).
    pub(crate) fn keys(&self) -> usize {
        match self {
            Self::InProcess { .. } => 1,
            Self::Http { upstream, .. } => upstream.len(),
        }
    }

    /// What the upstream said of the key a request used.
    pub(crate) fn report(&self, key: usize, outcome: Result<(), &GatewayError>) {
        if let Self::Http { upstream, .. } = self {
            upstream.report(key, outcome);
        }
    }

    /// Whether the backend is an in-process pool.
    pub(crate) fn is_in_process(&self) -> bool {
        matches!(self, Self::InProcess { .. })
    }

    /// The in-process pool of this backend, if it is one.
    pub(crate) fn profile(&self) -> Option<Profile> {
        match self {
            Self::InProcess { profile, .. } => Some(*profile),
            Self::Http { .. } => None,
        }
    }

    /// What the dispatch decision needs to know of this backend.
    pub(crate) fn facts(&self, local_available: bool) -> Facts<'_> {
        match self {
            Self::InProcess { proxy, .. } => Facts {
                in_process: true,
                // A proxy_url is another gateway: it speaks every dialect, so requests pass.
                upstream: Dialect::Passthrough,
                native: &[],
                has_http: proxy.is_some(),
                local_available,
            },
            Self::Http {
                dialect, native, ..
            } => Facts {
                in_process: false,
                upstream: *dialect,
                native,
                has_http: true,
                local_available: false,
            },
        }
    }
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
    /// The in-process Gemini CLI pool, when a backend uses it.
    pub(crate) geminicli: Option<Arc<Antigravity>>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) models: Mutex<Option<(tokio::time::Instant, ModelList)>>,
    pub(crate) patterns: Patterns,
    pub(crate) breakers: Breakers,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) metrics: Metrics,
    /// Fired when the shutdown grace period is over: streams still running end with the
    /// terminal error event.
    pub(crate) closing: tokio_util::sync::CancellationToken,
    /// Signs the thinking signatures handed to Responses clients inside reasoning items, so a
    /// later stateless turn can restore them.
    pub(crate) seal: ReasoningSeal,
    /// Responses made here, for `previous_response_id` and `GET /v1/responses/{id}`; shared
    /// with the state of a reloaded configuration.
    pub(crate) responses: Arc<ResponseStore>,
    /// The client and admin keys.
    pub(crate) keys: Keys,
    /// Model labels for the metrics, bounded by the configuration.
    pub(crate) model_labels: ModelLabels,
    /// Where shared state lives (this process, or Redis); the same across reloads.
    pub(crate) shared: Shared,
}

impl App {
    /// The in-process service of `profile`, when this configuration has it.
    pub(crate) fn local(&self, profile: Profile) -> Option<&Arc<Antigravity>> {
        match profile {
            Profile::Antigravity => Some(&self.antigravity),
            Profile::GeminiCli => self.geminicli.as_ref(),
        }
    }

    /// Every in-process service this configuration runs, with its pool.
    pub(crate) fn locals(&self) -> impl Iterator<Item = (Profile, &Arc<Antigravity>)> {
        [Profile::Antigravity, Profile::GeminiCli]
            .into_iter()
            .filter_map(|profile| self.local(profile).map(|service| (profile, service)))
    }

    /// The in-process service of `backend`, if it is served by one.
    pub(crate) fn local_of(&self, backend: &Backend) -> Option<&Arc<Antigravity>> {
        backend.reach.profile().and_then(|p| self.local(p))
    }

    /// Build the state; account-file problems are logged, not fatal.
    pub(crate) fn new(config: Config, shared: Shared) -> Result<Self, GatewayError> {
        let backends = config
            .backends
            .iter()
            .map(|backend| {
                Ok(Backend {
                    reach: Reach::of(backend)?,
                    config: backend.clone(),
                    stats: Stats::default(),
                })
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let budget = Arc::new(RetryBudget::default());
        let seal = ReasoningSeal::new(&seal_key(&config)?);
        let antigravity = Arc::new(pool(
            &config,
            Profile::Antigravity,
            budget.clone(),
            &shared,
        )?);
        let geminicli = config
            .backends
            .iter()
            .any(|b| b.kind.profile() == Some(Profile::GeminiCli))
            .then(|| pool(&config, Profile::GeminiCli, budget.clone(), &shared).map(Arc::new))
            .transpose()?;
        let patterns = Patterns::new(&config);
        let keys = Keys::new(&config);
        let model_labels = ModelLabels::new(&config);
        Ok(Self {
            keys,
            model_labels,
            patterns,
            config,
            backends,
            antigravity,
            geminicli,
            in_flight: AtomicUsize::new(0),
            models: Mutex::new(None),
            breakers: Breakers::default(),
            budget,
            metrics: Metrics::default(),
            closing: tokio_util::sync::CancellationToken::new(),
            seal,
            responses: Arc::default(),
            shared,
        })
    }

    /// The state for a reloaded `config`, taking over from `old` what must outlive a reload:
    /// the metric families, kept responses, the shutdown signal, the seal key when it is not
    /// configured (a random one), and the in-process service with its account pool (and the
    /// retry budget it shares) when `[antigravity]` did not change. Requests in flight keep
    /// `old`.
    pub(crate) fn next(config: Config, old: &Self) -> Result<Self, GatewayError> {
        let keep_service = same_pool(&config, &old.config, Profile::Antigravity);
        let keep_geminicli = same_pool(&config, &old.config, Profile::GeminiCli);
        let keep_seal = config.server.seal_key == old.config.server.seal_key;
        let mut app = Self::new(config, old.shared.clone())?;
        app.metrics = old.metrics.share();
        app.responses = old.responses.clone();
        app.closing = old.closing.clone();
        if keep_seal {
            app.seal = old.seal.clone();
        }
        if keep_service {
            app.antigravity = old.antigravity.clone();
            app.budget = old.budget.clone();
        }
        if keep_geminicli && app.geminicli.is_some() && old.geminicli.is_some() {
            app.geminicli = old.geminicli.clone();
        }
        Ok(app)
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

/// Whether two configurations build the same in-process pool of `profile` (secrets compared
/// too; the debug form redacts them).
fn same_pool(new: &Config, old: &Config, profile: Profile) -> bool {
    let (new, old) = (new.pool(profile), old.pool(profile));
    format!("{new:?}") == format!("{old:?}") && new.client_secret == old.client_secret
}

/// The configured seal key, or a random one for this process (blobs then do not outlive it).
fn seal_key(config: &Config) -> Result<Vec<u8>, GatewayError> {
    if let Some(key) = config.server.seal_key.as_ref().filter(|k| !k.is_empty()) {
        return Ok(key.expose().as_bytes().to_vec());
    }
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| GatewayError::internal("no randomness for the seal key"))?;
    Ok(key)
}

/// The in-process service of `profile`, with its account pool.
fn pool(
    config: &Config,
    profile: Profile,
    budget: Arc<RetryBudget>,
    shared: &Shared,
) -> Result<Antigravity, GatewayError> {
    let settings = config.pool(profile);
    let client = settings.client()?;
    let pool_config = PoolConfig {
        profile,
        shared: shared.accounts(),
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
        "{} accounts loaded",
        profile.name()
    );
    let service_config = ServiceConfig {
        profile,
        base_urls: settings.base_urls.clone(),
        user_agent: settings.user_agent.clone(),
        timeouts: settings.timeouts,
        short_retry_wait: settings.short_retry_wait,
        retries: budget,
        ..ServiceConfig::default()
    };
    Ok(Service::new(client, pool, service_config))
}
