//! The shared-state seam: what the replicas of one gateway tell each other about accounts.
//!
//! An account pool learns facts from its calls (a quota cooldown, an account the upstream
//! refused for good, a freshly refreshed token). With one replica they stay in its memory and
//! its files; with several, a [`SharedAccounts`] engine carries them to the others, and
//! elects one replica to refresh a token that several need at once. The pool never waits on
//! the engine for more than the engine's own bound: reads come from its local state, which the
//! engine keeps fresh by calling the pool back.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use crate::Secret;

/// A fact about one account that the other replicas should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFact {
    /// `account` may not serve `model` until `until_ms` (Unix milliseconds).
    Cooldown {
        /// The account id.
        account: String,
        /// The upstream model id.
        model: String,
        /// When the account may serve the model again.
        until_ms: u64,
    },
    /// `account` served `model` again: its cooldown for it is over.
    Cleared {
        /// The account id.
        account: String,
        /// The upstream model id.
        model: String,
    },
    /// `account` was disabled (by the operator, or by the gateway after a refresh token
    /// rejected for good or a 403).
    Disabled {
        /// The account id.
        account: String,
        /// Why.
        reason: String,
    },
    /// The operator enabled `account` again.
    Enabled {
        /// The account id.
        account: String,
    },
    /// A fresh access token of `account`, good until `expires_ms` (Unix milliseconds).
    Token {
        /// The account id.
        account: String,
        /// The token.
        access_token: Secret,
        /// When it expires.
        expires_ms: u64,
    },
}

impl AccountFact {
    /// The account the fact is about.
    pub fn account(&self) -> &str {
        match self {
            Self::Cooldown { account, .. }
            | Self::Cleared { account, .. }
            | Self::Disabled { account, .. }
            | Self::Enabled { account }
            | Self::Token { account, .. } => account,
        }
    }
}

/// Where facts from the other replicas are applied (the pool's local state); it answers
/// whether it still listens (`false` once its pool is gone, and the engine forgets it).
pub type FactSink = Arc<dyn Fn(AccountFact) -> bool + Send + Sync>;

/// How the replicas of one gateway share what their account pools learn.
///
/// ```
/// use gateway_core::state::{AccountFact, Alone, SharedAccounts};
///
/// // One replica: nothing to share, and every token refresh is this replica's own.
/// let shared = Alone;
/// shared.publish(AccountFact::Cleared { account: "a".into(), model: "m".into() });
/// let mine = futures_executor_lite(shared.claim_refresh("a"));
/// assert!(mine);
/// # fn futures_executor_lite<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
pub trait SharedAccounts: Send + Sync + fmt::Debug + 'static {
    /// Tell the other replicas `fact`. Never waits: the engine queues it.
    fn publish(&self, fact: AccountFact);

    /// Apply the other replicas' facts with `sink` from now on (and, when the engine
    /// (re)connects, the facts it holds).
    fn listen(&self, sink: FactSink);

    /// Ask to be the one replica refreshing `account`'s token now: `true` means refresh it
    /// (and publish the [`AccountFact::Token`]); `false` means another replica is refreshing
    /// it and its token will arrive through the sink. An engine that cannot tell answers
    /// `true`, within its bound.
    fn claim_refresh<'a>(
        &'a self,
        account: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
}

/// The embedded default: one replica, nothing shared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl SharedAccounts for Alone {
    fn publish(&self, _fact: AccountFact) {}

    fn listen(&self, _sink: FactSink) {}

    fn claim_refresh<'a>(
        &'a self,
        _account: &'a str,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(std::future::ready(true))
    }
}
