use http::StatusCode;

use super::*;

fn upstream(code: u16) -> GatewayError {
    GatewayError::upstream(StatusCode::from_u16(code).unwrap(), "upstream said no")
}

#[test]
fn status_and_type_mapping() {
    let cases = [
        (
            GatewayError::invalid_request("bad"),
            400,
            "invalid_request_error",
            Side::Client,
        ),
        (
            GatewayError::new(ErrorKind::Unauthorized, "no key"),
            401,
            "authentication_error",
            Side::Client,
        ),
        (
            GatewayError::new(ErrorKind::ModelNotFound, "no model"),
            404,
            "invalid_request_error",
            Side::Client,
        ),
        (
            GatewayError::new(ErrorKind::NotFound, "no path"),
            404,
            "not_found_error",
            Side::Client,
        ),
        (
            GatewayError::new(ErrorKind::PayloadTooLarge, "big"),
            413,
            "invalid_request_error",
            Side::Client,
        ),
        (
            GatewayError::new(ErrorKind::HeadersTooLarge, "big"),
            431,
            "invalid_request_error",
            Side::Client,
        ),
        (
            GatewayError::new(ErrorKind::RateLimited, "cooling"),
            429,
            "rate_limit_error",
            Side::Gateway,
        ),
        (
            GatewayError::new(ErrorKind::Overloaded, "full"),
            503,
            "server_error",
            Side::Gateway,
        ),
        (
            GatewayError::new(ErrorKind::Connect, "refused"),
            502,
            "server_error",
            Side::Upstream,
        ),
        (
            GatewayError::new(ErrorKind::IdleTimeout, "stalled"),
            504,
            "timeout_error",
            Side::Upstream,
        ),
        (
            GatewayError::new(ErrorKind::Truncated, "cut"),
            502,
            "server_error",
            Side::Upstream,
        ),
        (upstream(400), 400, "invalid_request_error", Side::Upstream),
        (upstream(429), 429, "rate_limit_error", Side::Upstream),
        (upstream(503), 503, "server_error", Side::Upstream),
        // An upstream "error" with a success status is still a failure for the client.
        (upstream(200), 502, "server_error", Side::Upstream),
        (
            GatewayError::new(ErrorKind::LoopDetected, "loop"),
            508,
            "server_error",
            Side::Gateway,
        ),
        (
            GatewayError::internal("bug"),
            500,
            "server_error",
            Side::Gateway,
        ),
    ];
    for (error, status, ty, side) in cases {
        assert_eq!(error.status().as_u16(), status, "{error:?}");
        assert_eq!(error.error_type(), ty, "{error:?}");
        assert_eq!(error.side(), side, "{error:?}");
    }
}

#[test]
fn retry_and_failover_predicates() {
    // (error, retry same upstream, fail over)
    let cases = [
        (upstream(429), true, true),
        (upstream(408), true, true),
        (upstream(500), true, true),
        (upstream(503), true, true),
        (upstream(400), false, false),
        (upstream(401), false, false),
        (upstream(404), false, false),
        (GatewayError::new(ErrorKind::Connect, "refused"), true, true),
        (GatewayError::new(ErrorKind::Transport, "reset"), true, true),
        (
            GatewayError::new(ErrorKind::FirstByteTimeout, "silent"),
            false,
            true,
        ),
        (
            GatewayError::new(ErrorKind::IdleTimeout, "stalled"),
            false,
            true,
        ),
        (
            GatewayError::new(ErrorKind::UpstreamProtocol, "html"),
            false,
            true,
        ),
        (GatewayError::new(ErrorKind::Truncated, "cut"), false, true),
        (GatewayError::invalid_request("bad"), false, false),
        (
            GatewayError::new(ErrorKind::Cancelled, "gone"),
            false,
            false,
        ),
    ];
    for (error, retry, failover) in cases {
        assert_eq!(error.is_retryable(), retry, "retry {error:?}");
        assert_eq!(error.allows_failover(), failover, "failover {error:?}");
    }
}

#[test]
fn envelope_carries_param_code_and_reason() {
    let error = GatewayError::invalid_request("messages: expected an array")
        .with_param("messages")
        .with_code("invalid_type");
    let json = serde_json::to_value(error.to_envelope()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"error": {"message": "messages: expected an array", "type": "invalid_request_error", "param": "messages", "code": "invalid_type"}})
    );

    let limited = upstream(429).with_retry(RetryHint {
        delay: Some(std::time::Duration::from_secs(3)),
        reason: Some("QUOTA_EXHAUSTED".into()),
    });
    assert_eq!(
        limited.to_envelope().error.code.as_deref(),
        Some("QUOTA_EXHAUSTED")
    );
    assert_eq!(
        limited.retry_after(),
        Some(std::time::Duration::from_secs(3))
    );
}

#[test]
fn display_is_the_message_and_the_source_is_chained() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let error = GatewayError::new(ErrorKind::Connect, "cannot reach 127.0.0.1:9").with_source(io);
    assert_eq!(error.to_string(), "cannot reach 127.0.0.1:9");
    assert!(std::error::Error::source(&error).is_some());
    assert!(format!("{error:?}").contains("Connect"));
}
