//! Local or proxy: how one hop reaches its backend. A pure function, table-tested.
//!
//! An in-process backend (`antigravity`) serves `/chat/completions` and `/models` through the
//! service (a direct call, no loopback HTTP). Every other endpoint, and every call while the
//! local service cannot serve (no usable account), goes through the proxy to its `proxy_url`
//! when one is configured; without one, the hop is unavailable. HTTP backends (`openai`,
//! `anthropic`) are always reached through the proxy.

use gateway_core::Dialect;

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

/// How to reach a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The in-process service.
    Local,
    /// HTTP through `gateway-proxy`.
    Proxy,
}

/// Whether an HTTP backend speaking `upstream` can serve a client speaking `client`: the same
/// protocol passes through, an OpenAI-compatible upstream is handed every endpoint as it is
/// (many serve `/v1/messages` and `/v1/responses` too), and endpoints the gateway does not
/// translate pass to any backend. Other pairs need a conversion the gateway does not have.
pub(crate) fn serves(upstream: Dialect, client: Dialect) -> bool {
    upstream == client || upstream == Dialect::OpenAiChat || client == Dialect::Passthrough
}

/// How to reach a backend (`in_process` or HTTP) for `endpoint`; `None` when the hop cannot
/// serve now.
pub(crate) fn via(
    in_process: bool,
    endpoint: Endpoint,
    local_available: bool,
    has_proxy: bool,
) -> Option<Via> {
    if !in_process {
        return Some(Via::Proxy);
    }
    let local_endpoint = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Models);
    if local_endpoint && local_available {
        Some(Via::Local)
    } else if has_proxy {
        Some(Via::Proxy)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case() {
        use Endpoint::*;
        let (antigravity, http) = (true, false);
        let cases = [
            // kind, endpoint, local available, proxy configured => via
            (antigravity, ChatCompletions, true, true, Some(Via::Local)),
            (antigravity, ChatCompletions, true, false, Some(Via::Local)),
            (antigravity, ChatCompletions, false, true, Some(Via::Proxy)),
            (antigravity, ChatCompletions, false, false, None),
            (antigravity, Models, true, false, Some(Via::Local)),
            (antigravity, Models, false, true, Some(Via::Proxy)),
            (antigravity, Other, true, true, Some(Via::Proxy)),
            (antigravity, Other, true, false, None),
            (http, ChatCompletions, false, false, Some(Via::Proxy)),
            (http, Models, true, false, Some(Via::Proxy)),
            (http, Other, false, false, Some(Via::Proxy)),
        ];
        for (kind, endpoint, local, proxy, expected) in cases {
            assert_eq!(
                via(kind, endpoint, local, proxy),
                expected,
                "{kind:?} {endpoint:?} local={local} proxy={proxy}"
            );
        }
        assert_eq!(Endpoint::of("/chat/completions"), ChatCompletions);
        use Dialect::*;
        for (upstream, client, expected) in [
            (OpenAiChat, OpenAiChat, true),
            (OpenAiChat, Anthropic, true),
            (OpenAiChat, Responses, true),
            (Anthropic, Anthropic, true),
            (Anthropic, Passthrough, true),
            (Anthropic, OpenAiChat, false),
            (Anthropic, Responses, false),
            (Anthropic, Gemini, false),
        ] {
            assert_eq!(
                serves(upstream, client),
                expected,
                "{upstream:?} for {client:?}"
            );
        }
        assert_eq!(Endpoint::of("/models"), Models);
        assert_eq!(Endpoint::of("/embeddings"), Other);
    }
}
