//! How one hop serves a request: in process, by passing the client's bytes through, or by
//! converting through the conversation into the upstream's dialect. A pure function,
//! table-tested.
//!
//! The in-process backend (`antigravity`) serves every protocol the gateway can decode, and
//! `/models`; everything else, and every call while the service cannot serve (no usable
//! account), goes to its `proxy_url` when one is configured (another gateway, which speaks
//! every protocol); without one, the hop is unavailable. An HTTP backend is handed its own
//! dialect, the dialects it serves natively (`native_messages`, `native_responses`) and every
//! pass-through endpoint as the client sent them, and any other protocol converted into its
//! dialect; a pair without a conversion is unavailable, so the chain moves on.

use gateway_core::Dialect;

use crate::convert;

/// Which endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Models,
    Other,
}

impl Endpoint {
    /// The endpoint of a path relative to the API root (`/chat/completions`, `/models`, ...).
    pub(crate) fn of(path: &str) -> Self {
        match path {
            "/chat/completions" => Self::ChatCompletions,
            "/models" => Self::Models,
            _ => Self::Other,
        }
    }
}

/// What a hop is, as far as the choice goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    /// The in-process service (else an HTTP upstream).
    pub(crate) in_process: bool,
    /// The dialect of the HTTP upstream (for the in-process backend, of its `proxy_url`).
    pub(crate) upstream: Dialect,
    /// Other dialects the HTTP upstream serves itself.
    pub(crate) native: &'a [Dialect],
    /// Whether there is an HTTP way (the upstream, or the `proxy_url`).
    pub(crate) has_http: bool,
    /// Whether the in-process service can serve now.
    pub(crate) local_available: bool,
}

/// How a hop serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// The in-process service, through the conversation.
    Local,
    /// The client's bytes as sent, to the HTTP upstream (or the `proxy_url`).
    Pass,
    /// Through the conversation into this dialect, to the HTTP upstream.
    Convert(Dialect),
}

/// How a hop with `facts` serves a `client` request for `endpoint`; `None` when it cannot now.
pub(crate) fn way(facts: Facts<'_>, client: Dialect, endpoint: Endpoint) -> Option<Way> {
    if facts.in_process {
        let local_endpoint = endpoint == Endpoint::Models
            || (client != Dialect::Passthrough && convert::supports(client));
        return if local_endpoint && facts.local_available {
            Some(Way::Local)
        } else if facts.has_http {
            Some(Way::Pass)
        } else {
            None
        };
    }
    if !facts.has_http {
        return None;
    }
    let upstream = facts.upstream;
    if client == Dialect::Passthrough || client == upstream || facts.native.contains(&client) {
        Some(Way::Pass)
    } else if convert::supports(client) && convert::supports(upstream) {
        Some(Way::Convert(upstream))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case() {
        use Dialect::*;
        use Endpoint::{ChatCompletions as Chat, Models, Other};
        let facts = |in_process, upstream, native: &'static [Dialect], has_http, local| Facts {
            in_process,
            upstream,
            native,
            has_http,
            local_available: local,
        };
        let antigravity = |has_proxy, local| facts(true, OpenAiChat, &[], has_proxy, local);
        let openai = facts(false, OpenAiChat, &[], true, false);
        let openai_native = facts(false, OpenAiChat, &[Anthropic, Responses], true, false);
        let anthropic = facts(false, Anthropic, &[], true, false);
        let cases = [
            // The in-process backend: local while it can, else its proxy_url.
            (antigravity(true, true), OpenAiChat, Chat, Some(Way::Local)),
            (antigravity(false, true), OpenAiChat, Chat, Some(Way::Local)),
            (antigravity(true, false), OpenAiChat, Chat, Some(Way::Pass)),
            (antigravity(false, false), OpenAiChat, Chat, None),
            (
                antigravity(false, true),
                Passthrough,
                Models,
                Some(Way::Local),
            ),
            (
                antigravity(true, false),
                Passthrough,
                Models,
                Some(Way::Pass),
            ),
            (antigravity(true, true), Passthrough, Other, Some(Way::Pass)),
            (antigravity(false, true), Passthrough, Other, None),
            // HTTP upstreams: their own dialect and pass-through endpoints as sent.
            (openai, OpenAiChat, Chat, Some(Way::Pass)),
            (openai, Passthrough, Other, Some(Way::Pass)),
            (openai, Passthrough, Models, Some(Way::Pass)),
            (anthropic, Anthropic, Other, Some(Way::Pass)),
            (anthropic, Passthrough, Other, Some(Way::Pass)),
            // Native extra dialects pass; the rest is converted when a conversion exists.
            (openai_native, Anthropic, Other, Some(Way::Pass)),
            (openai_native, Responses, Other, Some(Way::Pass)),
        ];
        for (facts, client, endpoint, expected) in cases {
            assert_eq!(
                way(facts, client, endpoint),
                expected,
                "{facts:?} {client:?} {endpoint:?}"
            );
        }
        // Conversions follow what the dialect modules can do.
        for (facts, client) in [
            (anthropic, OpenAiChat),
            (openai, Anthropic),
            (openai, Responses),
        ] {
            let expected = (convert::supports(client) && convert::supports(facts.upstream))
                .then_some(Way::Convert(facts.upstream));
            assert_eq!(way(facts, client, Chat), expected, "{facts:?} {client:?}");
        }
        assert_eq!(Endpoint::of("/chat/completions"), Chat);
        assert_eq!(Endpoint::of("/models"), Models);
        assert_eq!(Endpoint::of("/embeddings"), Other);
    }
}
