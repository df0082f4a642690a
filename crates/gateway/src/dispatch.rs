//! Local or proxy: how one hop reaches its backend. A pure function, table-tested.
//!
//! The `antigravity` backend serves `/chat/completions` and `/models` through the in-process
//! service (a direct call, no loopback HTTP). Every other endpoint, and every call while the
//! local service cannot serve (no usable account), goes through the proxy to its `proxy_url`
//! when one is configured; without one, the hop is unavailable. An `openai` backend is always
//! reached through the proxy.

use crate::config::BackendKind;

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

/// How to reach a backend of `kind` for `endpoint`; `None` when the hop cannot serve now.
pub(crate) fn via(
    kind: BackendKind,
    endpoint: Endpoint,
    local_available: bool,
    has_proxy: bool,
) -> Option<Via> {
    match kind {
        BackendKind::Openai => Some(Via::Proxy),
        BackendKind::Antigravity => {
            let local_endpoint = matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Models);
            if local_endpoint && local_available {
                Some(Via::Local)
            } else if has_proxy {
                Some(Via::Proxy)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case() {
        use BackendKind::*;
        use Endpoint::*;
        let cases = [
            // kind, endpoint, local available, proxy configured => via
            (Antigravity, ChatCompletions, true, true, Some(Via::Local)),
            (Antigravity, ChatCompletions, true, false, Some(Via::Local)),
            (Antigravity, ChatCompletions, false, true, Some(Via::Proxy)),
            (Antigravity, ChatCompletions, false, false, None),
            (Antigravity, Models, true, false, Some(Via::Local)),
            (Antigravity, Models, false, true, Some(Via::Proxy)),
            (Antigravity, Other, true, true, Some(Via::Proxy)),
            (Antigravity, Other, true, false, None),
            (Openai, ChatCompletions, false, false, Some(Via::Proxy)),
            (Openai, Models, true, false, Some(Via::Proxy)),
            (Openai, Other, false, false, Some(Via::Proxy)),
        ];
        for (kind, endpoint, local, proxy, expected) in cases {
            assert_eq!(
                via(kind, endpoint, local, proxy),
                expected,
                "{kind:?} {endpoint:?} local={local} proxy={proxy}"
            );
        }
        assert_eq!(Endpoint::of("/chat/completions"), ChatCompletions);
        assert_eq!(Endpoint::of("/models"), Models);
        assert_eq!(Endpoint::of("/embeddings"), Other);
    }
}
