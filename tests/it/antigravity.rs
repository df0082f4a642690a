//! The in-process Antigravity service over the real proxy transport, against the mock upstream
//! speaking the Antigravity protocol.

use antigravity_service::{
    AccountFile, AccountPool, AccountState, PoolConfig, Service, ServiceConfig, StoredAccount,
};
use futures_util::StreamExt;
use gateway_core::{
    ChatContext, ChatOutput, ErrorKind,
    openai::{ChatCompletionChunk, ChatRequest, FinishReason, Role, parse_json},
};
use gateway_proxy::{Client, ClientConfig};
use test_support::{Behaviour, MockUpstream, mock};

type Svc = Service<Client, AccountPool<Client>>;

fn account(expired: bool) -> AccountFile {
    let expiry = if expired {
        "2000-01-01T00:00:00Z"
    } else {
        "2999-01-01T00:00:00Z"
    };
    AccountFile::from_json(
        format!(
            r#"{{"client_id":"cid","client_secret":"csecret","refresh_token":"rtoken","access_token":"ya29.stored",
                "expiry":"{expiry}","project_id":"proj-owner-1","email":"owner@example.com"}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn service(bases: &[&MockUpstream], token: &MockUpstream, expired: bool) -> Svc {
    service_with(bases, token, expired, ServiceConfig::default().retries)
}

fn service_with(
    bases: &[&MockUpstream],
    token: &MockUpstream,
    expired: bool,
    retries: std::sync::Arc<dyn gateway_core::retry::RetryAllowance>,
) -> Svc {
    let client = Client::new(ClientConfig::default()).unwrap();
    let stored = StoredAccount {
        id: "owner".into(),
        file: account(expired),
        state: AccountState::default(),
    };
    let pool_config = PoolConfig {
        token_url: format!("{}/token", token.url()),
        base_url: bases[0].url(),
        ..PoolConfig::default()
    };
    let credentials = AccountPool::new(client.clone(), pool_config, vec![stored], None);
    let config = ServiceConfig {
        base_urls: bases.iter().map(|m| m.url()).collect(),
        retries,
        ..ServiceConfig::default()
    };
    Service::new(client, credentials, config)
}

fn request(stream: bool) -> ChatRequest {
    parse_json(
        format!(
            r#"{{"model":"gemini-3-pro","stream":{stream},"stream_options":{{"include_usage":true}},
                "messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"hello"}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

async fn collect(output: ChatOutput) -> Vec<ChatCompletionChunk> {
    let ChatOutput::Stream(mut stream) = output else {
        panic!("a stream was asked for");
    };
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        chunks.push(item.unwrap());
    }
    chunks
}

#[tokio::test]
async fn streams_through_the_transport() {
    let upstream = MockUpstream::start().await.unwrap();
    let service = service(&[&upstream], &upstream, false);
    let chunks = collect(
        service
            .chat(request(true), ChatContext::default())
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    let text: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter().filter_map(|ch| ch.delta.content.clone()))
        .collect();
    assert_eq!(text, mock::antigravity_text(3));
    let finishes: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.choices.iter().filter_map(|ch| ch.finish_reason))
        .collect();
    assert_eq!(finishes, [FinishReason::Stop]);
    let usage = chunks.last().unwrap().usage.clone().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (7, 7, 14)
    );
    assert!(chunks.iter().all(|c| c.model == "gemini-3-pro"));

    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri, "/v1internal:streamGenerateContent?alt=sse");
    assert_eq!(seen.headers["authorization"], "Bearer ya29.stored");
    assert_eq!(seen.headers["requesttype"], "agent");
    assert!(
        seen.headers["requestid"]
            .to_str()
            .unwrap()
            .starts_with("req-")
    );
    let envelope = seen.json();
    assert_eq!(envelope["project"], "proj-owner-1");
    assert_eq!(envelope["model"], "gemini-3-pro-high");
    assert_eq!(envelope["userAgent"], "antigravity");
    assert!(
        envelope["requestId"]
            .as_str()
            .unwrap()
            .starts_with("agent/")
    );
    assert_eq!(
        envelope["request"]["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
    assert_eq!(
        envelope["request"]["contents"][0]["parts"][0]["text"],
        "hello"
    );
}

#[tokio::test]
async fn non_streaming_collects_the_stream() {
    let upstream = MockUpstream::start().await.unwrap();
    let service = service(&[&upstream], &upstream, false);
    let ChatOutput::Complete(completion) = service
        .chat(request(false), ChatContext::default())
        .await
        .unwrap()
    else {
        panic!("a whole completion was asked for");
    };
    assert_eq!(completion.object, "chat.completion");
    assert!(completion.id.starts_with("chatcmpl-"));
    assert_eq!(
        completion.choices[0].message.content.as_deref(),
        Some(mock::antigravity_text(3).as_str())
    );
    assert_eq!(
        completion.choices[0].finish_reason,
        Some(FinishReason::Stop)
    );
    assert_eq!(
        completion
            .usage
            .as_ref()
            .unwrap()
            .completion_tokens_details
            .as_ref()
            .unwrap()
            .reasoning_tokens,
        Some(2)
    );
}

#[tokio::test]
async fn a_429_with_retry_info_moves_to_the_next_base_url() {
    let first = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    first.push(Behaviour {
        status: 429,
        body: Some(
            r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED",
               "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3s"}]}}"#
                .into(),
        ),
        ..Behaviour::default()
    });
    let service = service(&[&first, &second], &first, false);
    let chunks = collect(
        service
            .chat(request(true), ChatContext::default())
            .await
            .unwrap(),
    )
    .await;
    assert!(chunks.iter().any(|c| {
        c.choices
            .iter()
            .any(|ch| ch.finish_reason == Some(FinishReason::Stop))
    }));
    assert_eq!(first.requests(), 1);
    assert_eq!(second.requests(), 1);
}

/// A budget that allows a fixed number of retries and counts the requests for them.
#[derive(Debug)]
struct Budget {
    left: std::sync::atomic::AtomicUsize,
    asked: std::sync::atomic::AtomicUsize,
}

impl gateway_core::retry::RetryAllowance for Budget {
    fn try_retry(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.asked.fetch_add(1, SeqCst);
        self.left
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[tokio::test]
async fn the_services_own_retries_draw_on_the_shared_budget() {
    use std::sync::{Arc, atomic::Ordering::SeqCst};
    for (allowed, second_requests) in [(0, 0), (1, 1)] {
        let first = MockUpstream::start().await.unwrap();
        let second = MockUpstream::start().await.unwrap();
        first.push(Behaviour {
            status: 503,
            ..Behaviour::default()
        });
        let budget = Arc::new(Budget {
            left: allowed.into(),
            asked: 0.into(),
        });
        let service = service_with(&[&first, &second], &first, false, budget.clone());
        let result = service.chat(request(true), ChatContext::default()).await;
        assert_eq!(first.requests(), 1);
        assert_eq!(second.requests(), second_requests, "allowed {allowed}");
        assert_eq!(budget.asked.load(SeqCst), 1, "one retry was asked for");
        if allowed == 0 {
            let err = result.err().unwrap();
            assert_eq!(err.upstream_status().unwrap().as_u16(), 503);
        } else {
            assert!(result.is_ok());
        }
    }
}

#[tokio::test]
async fn a_400_from_upstream_stays_a_400_with_its_message() {
    let upstream = MockUpstream::start().await.unwrap();
    let second = MockUpstream::start().await.unwrap();
    upstream.push(Behaviour {
        status: 400,
        body: Some(r#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#.into()),
        ..Behaviour::default()
    });
    let service = service(&[&upstream, &second], &upstream, false);
    let err = service
        .chat(request(true), ChatContext::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Upstream);
    assert_eq!(err.status().as_u16(), 400);
    assert_eq!(err.message(), "Request contains an invalid argument.");
    assert_eq!(
        second.requests(),
        0,
        "a client error is not retried elsewhere"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_before_use() {
    let upstream = MockUpstream::start().await.unwrap();
    let token = MockUpstream::start().await.unwrap();
    let service = service(&[&upstream], &token, true);
    collect(
        service
            .chat(request(true), ChatContext::default())
            .await
            .unwrap(),
    )
    .await;
    let refresh = token.recorded().pop().unwrap();
    let form = String::from_utf8(refresh.body.to_vec()).unwrap();
    assert!(
        form.contains("grant_type=refresh_token") && form.contains("refresh_token=rtoken"),
        "{form}"
    );
    assert_eq!(
        upstream.recorded().pop().unwrap().headers["authorization"],
        "Bearer ya29.mock-fresh-token"
    );
    // The fresh token is reused.
    collect(
        service
            .chat(request(true), ChatContext::default())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(token.requests(), 1);
}

#[tokio::test]
async fn models_come_from_fetch_available_models() {
    let upstream = MockUpstream::start().await.unwrap();
    let service = service(&[&upstream], &upstream, false);
    let models = service.models().await.unwrap();
    let ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["claude-sonnet-4-5", "gemini-3-pro-high"]);
    assert_eq!(
        upstream.recorded().pop().unwrap().uri,
        "/v1internal:fetchAvailableModels"
    );
}

#[tokio::test]
async fn count_tokens_asks_cloud_code() {
    let upstream = MockUpstream::start().await.unwrap();
    upstream.push(Behaviour {
        body: Some(r#"{"totalTokens": 42}"#.into()),
        ..Behaviour::default()
    });
    let service = service(&[&upstream], &upstream, false);
    let conversation = gateway_core::openai::request_to_conversation(request(false)).unwrap();
    let counted = service
        .count_tokens(&conversation, &ChatContext::default())
        .await
        .unwrap();
    assert_eq!(counted, 42);
    let seen = upstream.recorded().pop().unwrap();
    assert_eq!(seen.uri.path(), "/v1internal:countTokens");
    let body = seen.json();
    assert_eq!(body["request"]["model"], "models/gemini-3-pro-high");
    assert_eq!(body["request"]["contents"][0]["parts"][0]["text"], "hello");
    assert_eq!(seen.headers["authorization"], "Bearer ya29.stored");
}

#[tokio::test]
async fn a_quota_error_inside_a_200_stream_cools_that_account() {
    let upstream = MockUpstream::start().await.unwrap();
    let client = Client::new(ClientConfig::default()).unwrap();
    let stored = |id: &str, token: &str| {
        let mut file = account(false);
        file.access_token = Some(gateway_core::Secret::new(token));
        file.email = Some(format!("{id}@example.com"));
        StoredAccount {
            id: id.into(),
            file,
            state: AccountState::default(),
        }
    };
    let pool_config = PoolConfig {
        token_url: format!("{}/token", upstream.url()),
        base_url: upstream.url(),
        selection: antigravity_service::Selection::FillFirst,
        ..PoolConfig::default()
    };
    let credentials = AccountPool::new(
        client.clone(),
        pool_config,
        vec![
            stored("first", "ya29.first"),
            stored("second", "ya29.second"),
        ],
        None,
    );
    let service = Service::new(
        client,
        credentials,
        ServiceConfig {
            base_urls: vec![upstream.url()],
            ..ServiceConfig::default()
        },
    );
    upstream.push(Behaviour {
        content_type: Some("text/event-stream".into()),
        body: Some(
            "data: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"QUOTA_EXHAUSTED\"},{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3600s\"}]}}\n\n"
                .into(),
        ),
        ..Behaviour::default()
    });
    let ChatOutput::Stream(mut first) = service
        .chat(request(true), ChatContext::default())
        .await
        .unwrap()
    else {
        panic!("a stream was asked for");
    };
    let err = first.next().await.unwrap().unwrap_err();
    assert_eq!(err.upstream_status().unwrap().as_u16(), 429);
    drop(first);
    let token = |n: usize| {
        upstream.recorded()[n].headers["authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(token(0), "Bearer ya29.first");
    // Fill-first would take the first account again, unless the event cooled it.
    let second = collect(
        service
            .chat(request(true), ChatContext::default())
            .await
            .unwrap(),
    )
    .await;
    assert!(!second.is_empty());
    assert_eq!(token(1), "Bearer ya29.second");
}
