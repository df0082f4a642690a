//! What to do after a failed attempt: one pure function over the outcome and the policy.
//!
//! Defaults (the table in `docs/reliability.md`):
//! - a backend rule matching the status and the body decides first; its `failover` needs the
//!   route's `fallback_on` to allow it like any other (the default `fallback_on` does; a route
//!   that writes its own must name the status);
//! - a context-length 400 fails over to the next hop that sends another model (a larger window
//!   may take the request; the same model never will), under the same `fallback_on` rule as a
//!   backend rule;
//! - content-policy 400s stop, with the provider's reason;
//! - other client errors stop: another backend would refuse the same request;
//! - a rate limit with a short hint waits and retries the same hop; with a long hint the hop
//!   cools down and the chain fails over; without a hint it fails over;
//! - a timeout fails over: a silent upstream is not asked again on the same hop;
//! - a refused connection fails over; a connection reset before the answer and a 5xx retry the
//!   same hop while its retries last, then fail over;
//! - a 2xx that is not what was asked for (wrong type, an error event, an empty or truncated
//!   stream before the first content) fails over;
//! - failing over needs the route's `fallback_on` to allow it; otherwise the chain stops;
//! - a retry the chain cannot afford (the retry budget is spent, the deadline is near, or the
//!   hop's breaker opened during this request) is decided again as if the hop had no retries
//!   left, so the decision logged is the one taken.
//!
//! Beside it, the other questions the chain asks of a failure: may the route move on
//! (`falls_back`), does it count against the backend's breaker (`blames_the_backend`), and how
//! it is named in `x-gateway-attempts` (`attempt_label`). The in-process service's own retries
//! (another base URL, another account) draw on the same retry budget as the chain's.

use std::time::Duration;

use gateway_core::{ErrorKind, GatewayError};

use crate::config::{Condition, NamedCondition, Rule, RuleAction, default_fallback_on};

/// The decision for one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try the same hop again after this delay.
    RetrySame(Duration),
    /// Move to the next hop.
    FailOver,
    /// Move to the next hop that sends another model than this one.
    FailOverToOtherModel,
    /// Move to the next hop; this hop should not be asked for this long.
    CoolDownAndFailOver(Duration),
    /// Give the client this error.
    Stop,
}

/// What the decision depends on besides the error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy<'a> {
    /// The route's conditions for failing over.
    pub(crate) fallback_on: &'a [Condition],
    /// The backend's extra rules.
    pub(crate) rules: &'a [Rule],
    /// Retries of this hop so far.
    pub(crate) retries: u32,
    /// Retries this hop allows.
    pub(crate) max_retries: u32,
    /// Hints up to this long are waited out on the same hop.
    pub(crate) short_hint: Duration,
    /// The backoff before retry number `retries + 1` (already jittered by the caller).
    pub(crate) backoff: Duration,
}

/// The provider's text: its message and its body.
fn text(err: &GatewayError) -> String {
    let mut text = err.message().to_lowercase();
    if let Some(body) = err.upstream_body() {
        text.push(' ');
        text.push_str(&String::from_utf8_lossy(body).to_lowercase());
    }
    text
}

/// Whether `err` says the request is longer than the model's context window.
pub(crate) fn is_context_length(err: &GatewayError) -> bool {
    if err.kind() != ErrorKind::Upstream
        || !matches!(err.upstream_status().map(|s| s.as_u16()), Some(400 | 413))
    {
        return false;
    }
    let text = text(err);
    [
        "context_length_exceeded",
        "maximum context length",
        "context window",
        "prompt is too long",
        "input is too long",
        "exceeds the maximum number of tokens",
        "too many tokens",
        "reduce the length",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Whether a decision the route did not name in `fallback_on` (a backend rule's `failover`, a
/// context-length failover) may move on: with the default `fallback_on`, or one that names the
/// status.
fn named_or_default(conditions: &[Condition], status: u16) -> bool {
    conditions.contains(&Condition::Status(status)) || conditions == default_fallback_on()
}

pub(crate) fn classify(err: &GatewayError, policy: &Policy<'_>) -> Decision {
    let status = err.upstream_status().map(|s| s.as_u16());
    if let Some(rule) = policy.rules.iter().find(|rule| {
        status == Some(rule.status)
            && rule
                .body
                .as_ref()
                .is_none_or(|needle| text(err).contains(&needle.to_lowercase()))
    }) {
        let fail_over = if named_or_default(policy.fallback_on, rule.status) {
            Decision::FailOver
        } else {
            Decision::Stop
        };
        return match rule.action {
            RuleAction::Stop => Decision::Stop,
            RuleAction::Failover => fail_over,
            RuleAction::Retry if policy.retries < policy.max_retries => {
                Decision::RetrySame(policy.backoff)
            }
            RuleAction::Retry => fail_over,
        };
    }
    let can_retry = policy.retries < policy.max_retries;
    let allowed = |condition: Condition| policy.fallback_on.contains(&condition);
    let fail_over = |condition: Condition| {
        if allowed(condition) {
            Decision::FailOver
        } else {
            Decision::Stop
        }
    };

    if err.is_timeout() {
        return fail_over(Condition::Named(NamedCondition::Timeout));
    }
    match err.kind() {
        ErrorKind::Upstream => {}
        ErrorKind::Connect => return fail_over(Condition::Named(NamedCondition::Connect)),
        ErrorKind::Transport if can_retry => return Decision::RetrySame(policy.backoff),
        ErrorKind::Transport => return fail_over(Condition::Named(NamedCondition::Connect)),
        ErrorKind::RateLimited => {
            // The account pool already knows when it frees up; the chain moves on meanwhile.
            return if allowed(Condition::Status(429)) {
                Decision::FailOver
            } else {
                Decision::Stop
            };
        }
        ErrorKind::Unavailable
        | ErrorKind::Overloaded
        | ErrorKind::UpstreamProtocol
        | ErrorKind::Truncated => {
            return fail_over(Condition::Named(NamedCondition::Unavailable));
        }
        _ => return Decision::Stop,
    }
    let Some(status) = status else {
        return Decision::Stop;
    };
    let condition = Condition::Status(status);
    match status {
        400 | 413 if is_context_length(err) && named_or_default(policy.fallback_on, status) => {
            Decision::FailOverToOtherModel
        }
        400 => Decision::Stop,
        429 => match err.retry_after() {
            Some(hint) if hint <= policy.short_hint && can_retry => Decision::RetrySame(hint),
            Some(hint) if allowed(condition) => Decision::CoolDownAndFailOver(hint),
            _ => fail_over(condition),
        },
        408 | 500..=599 => {
            let hint = err.retry_after().filter(|h| *h <= policy.short_hint);
            if can_retry {
                Decision::RetrySame(hint.unwrap_or(policy.backoff))
            } else {
                fail_over(condition)
            }
        }
        _ => Decision::Stop,
    }
}

/// The outcome of one hop, as shown in `x-gateway-attempts`.
pub(crate) fn attempt_label(err: &GatewayError) -> String {
    match err.upstream_status() {
        Some(status) if err.kind() == ErrorKind::Upstream => status.as_u16().to_string(),
        _ if err.is_timeout() => "timeout".to_owned(),
        _ => match err.kind() {
            ErrorKind::Connect | ErrorKind::Transport => "connect".to_owned(),
            ErrorKind::RateLimited => "429".to_owned(),
            _ => "unavailable".to_owned(),
        },
    }
}

/// Whether the route lets the chain move on after `err` (the table tests check the default
/// conditions with it).
#[cfg(test)]
pub(crate) fn falls_back(err: &GatewayError, conditions: &[Condition]) -> bool {
    let status = match err.kind() {
        ErrorKind::Upstream => err.upstream_status().map(|s| s.as_u16()),
        ErrorKind::RateLimited => Some(429),
        _ => None,
    };
    if let Some(status) = status {
        return conditions.contains(&Condition::Status(status));
    }
    let named = if err.is_timeout() {
        NamedCondition::Timeout
    } else {
        match err.kind() {
            ErrorKind::Connect | ErrorKind::Transport => NamedCondition::Connect,
            ErrorKind::Unavailable
            | ErrorKind::Overloaded
            | ErrorKind::UpstreamProtocol
            | ErrorKind::Truncated => NamedCondition::Unavailable,
            _ => return false,
        }
    };
    conditions.contains(&Condition::Named(named))
}

/// Whether the failure says something about the backend's health (and feeds its breaker):
/// upstream failures, but not the client's own bad requests.
pub(crate) fn blames_the_backend(err: &GatewayError) -> bool {
    match err.upstream_status().map(|s| s.as_u16()) {
        Some(status) if err.kind() == ErrorKind::Upstream => {
            status == 408 || status == 429 || status >= 500
        }
        _ => matches!(err.side(), gateway_core::Side::Upstream),
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::config::default_fallback_on;

    fn upstream(status: u16, body: &str, retry_after: Option<&str>) -> GatewayError {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert("retry-after", value.parse().unwrap());
        }
        GatewayError::from_upstream_response(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body.to_owned().into(),
            "http://x",
        )
    }

    fn kind(kind: ErrorKind) -> GatewayError {
        GatewayError::new(kind, "x")
    }

    const SHORT: Duration = Duration::from_secs(2);
    const BACKOFF: Duration = Duration::from_millis(100);

    fn check(err: GatewayError, retries: u32, expected: Decision) {
        let on = default_fallback_on();
        let policy = Policy {
            fallback_on: &on,
            rules: &[],
            retries,
            max_retries: 1,
            short_hint: SHORT,
            backoff: BACKOFF,
        };
        assert_eq!(
            classify(&err, &policy),
            expected,
            "{err:?} after {retries} retries"
        );
    }

    #[test]
    fn the_default_table() {
        use Decision::*;
        let secs = Duration::from_secs;
        check(upstream(429, "", Some("1")), 0, RetrySame(secs(1)));
        check(
            upstream(429, "", Some("1")),
            1,
            CoolDownAndFailOver(secs(1)),
        );
        check(
            upstream(429, "", Some("120")),
            0,
            CoolDownAndFailOver(secs(120)),
        );
        check(upstream(429, "", None), 0, FailOver);
        check(upstream(500, "", None), 0, RetrySame(BACKOFF));
        check(upstream(500, "", None), 1, FailOver);
        check(upstream(503, "", Some("1")), 0, RetrySame(secs(1)));
        check(upstream(503, "", None), 1, FailOver);
        check(upstream(408, "", None), 0, RetrySame(BACKOFF));
        check(
            upstream(
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens","code":"context_length_exceeded"}}"#,
                None,
            ),
            0,
            FailOverToOtherModel,
        );
        check(
            upstream(
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
                None,
            ),
            0,
            FailOverToOtherModel,
        );
        check(
            upstream(
                400,
                r#"{"error":{"message":"Your request was rejected by our safety system","code":"content_policy_violation"}}"#,
                None,
            ),
            0,
            Stop,
        );
        check(upstream(400, "bad", None), 0, Stop);
        check(upstream(401, "", None), 0, Stop);
        check(upstream(404, "", None), 0, Stop);
        check(kind(ErrorKind::Connect), 0, FailOver);
        check(kind(ErrorKind::Transport), 0, RetrySame(BACKOFF));
        check(kind(ErrorKind::Transport), 1, FailOver);
        check(kind(ErrorKind::ConnectTimeout), 0, FailOver);
        check(kind(ErrorKind::HeadersTimeout), 0, FailOver);
        check(kind(ErrorKind::FirstByteTimeout), 0, FailOver);
        check(kind(ErrorKind::IdleTimeout), 0, FailOver);
        check(kind(ErrorKind::UpstreamProtocol), 0, FailOver);
        check(kind(ErrorKind::Truncated), 0, FailOver);
        check(kind(ErrorKind::Unavailable), 0, FailOver);
        check(kind(ErrorKind::RateLimited), 0, FailOver);
        check(kind(ErrorKind::InvalidRequest), 0, Stop);
        check(kind(ErrorKind::Cancelled), 0, Stop);
    }

    #[test]
    fn fallback_on_narrows_and_rules_decide_first() {
        let narrow = [Condition::Status(429)];
        let rules = [
            Rule {
                status: 400,
                body: Some("overloaded".into()),
                action: RuleAction::Failover,
            },
            Rule {
                status: 500,
                body: None,
                action: RuleAction::Stop,
            },
        ];
        let policy = Policy {
            fallback_on: &narrow,
            rules: &rules,
            retries: 0,
            max_retries: 0,
            short_hint: SHORT,
            backoff: BACKOFF,
        };
        assert_eq!(classify(&upstream(503, "", None), &policy), Decision::Stop);
        assert_eq!(
            classify(&kind(ErrorKind::IdleTimeout), &policy),
            Decision::Stop
        );
        assert_eq!(
            classify(&upstream(429, "", None), &policy),
            Decision::FailOver
        );
        assert_eq!(
            classify(
                &upstream(400, r#"{"error":{"message":"Model overloaded"}}"#, None),
                &policy
            ),
            Decision::Stop,
            "a route that narrows fallback_on must name the status for a rule to fail over"
        );
        assert_eq!(classify(&upstream(500, "", None), &policy), Decision::Stop);
        assert_eq!(
            classify(
                &upstream(400, r#"{"error":{"code":"context_length_exceeded"}}"#, None),
                &policy
            ),
            Decision::Stop,
            "nor does a context-length failover"
        );
        let named = [Condition::Status(400)];
        let with_400 = Policy {
            fallback_on: &named,
            ..policy
        };
        assert_eq!(
            classify(
                &upstream(400, r#"{"error":{"message":"Model overloaded"}}"#, None),
                &with_400
            ),
            Decision::FailOver
        );
        let default = default_fallback_on();
        let by_default = Policy {
            fallback_on: &default,
            ..policy
        };
        assert_eq!(
            classify(
                &upstream(400, r#"{"error":{"message":"Model overloaded"}}"#, None),
                &by_default
            ),
            Decision::FailOver,
            "the default fallback_on lets a rule fail over"
        );
    }
}
