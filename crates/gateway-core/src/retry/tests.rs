use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::*;

fn now() -> SystemTime {
    // 2025-11-20T07:00:00Z
    UNIX_EPOCH + Duration::from_secs(1_763_622_000)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn check(pairs: &[(&str, &str)], body: &str, delay: Option<Duration>, reason: Option<&str>) {
    let hint = RetryHint::from_response(&headers(pairs), body.as_bytes(), now());
    assert_eq!(hint.delay, delay, "headers {pairs:?} body {body}");
    assert_eq!(
        hint.reason.as_deref(),
        reason,
        "headers {pairs:?} body {body}"
    );
}

const GOOGLE_RATE_LIMIT: &str = r#"{
  "error": {
    "code": 429,
    "message": "You have exhausted your capacity on this model. Your quota will reset after 3s.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "cloudcode-pa.googleapis.com",
        "metadata": {"model": "claude-sonnet-4-5", "quotaResetDelay": "3.069447862s", "quotaResetTimeStamp": "2025-11-20T07:00:03Z"}
      },
      {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3.069447862s"}
    ]
  }
}"#;

const GOOGLE_QUOTA_EXHAUSTED: &str = r#"{
  "error": {
    "code": 429,
    "message": "Resource has been exhausted (e.g. check quota).",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "QUOTA_EXHAUSTED",
        "domain": "cloudcode-pa.googleapis.com",
        "metadata": {"quotaResetDelay": "2h26m34.864452816s", "quotaResetTimeStamp": "2025-11-20T09:26:35Z", "model": "gemini-3-pro-high"}
      }
    ]
  }
}"#;

const GOOGLE_TIMESTAMP_ONLY: &str = r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",
  "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED",
  "metadata":{"quotaResetTimeStamp":"2025-11-20T07:30:00Z"}}]}}"#;

const GOOGLE_CAPACITY: &str = r#"{"error":{"code":503,"message":"No capacity available for model claude-opus-4-5-thinking on the server","status":"UNAVAILABLE",
  "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"MODEL_CAPACITY_EXHAUSTED","domain":"cloudcode-pa.googleapis.com","metadata":{"model":"claude-opus-4-5-thinking"}}]}}"#;

const GOOGLE_RETRY_INFO_ONLY: &str = r#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED",
  "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"41s"}]}}"#;

const OPENAI_RATE_LIMIT: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2.5s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;

#[test]
fn google_bodies() {
    let ms = Duration::from_millis;
    check(
        &[],
        GOOGLE_RATE_LIMIT,
        Some(Duration::from_nanos(3_069_447_862)),
        Some("RATE_LIMIT_EXCEEDED"),
    );
    check(
        &[],
        GOOGLE_QUOTA_EXHAUSTED,
        Some(Duration::from_secs(2 * 3600 + 26 * 60 + 34) + Duration::from_nanos(864_452_816)),
        Some("QUOTA_EXHAUSTED"),
    );
    check(
        &[],
        GOOGLE_TIMESTAMP_ONLY,
        Some(Duration::from_secs(30 * 60)),
        Some("QUOTA_EXHAUSTED"),
    );
    check(&[], GOOGLE_CAPACITY, None, Some("MODEL_CAPACITY_EXHAUSTED"));
    check(
        &[],
        GOOGLE_RETRY_INFO_ONLY,
        Some(Duration::from_secs(41)),
        None,
    );
    check(&[], OPENAI_RATE_LIMIT, Some(ms(2500)), None);
}

#[test]
fn headers_win_over_bodies() {
    check(
        &[("retry-after", "7")],
        GOOGLE_RATE_LIMIT,
        Some(Duration::from_secs(7)),
        Some("RATE_LIMIT_EXCEEDED"),
    );
    check(
        &[("retry-after-ms", "1250"), ("retry-after", "7")],
        "",
        Some(Duration::from_millis(1250)),
        None,
    );
    check(
        &[("Retry-After", "Thu, 20 Nov 2025 07:01:30 GMT")],
        "",
        Some(Duration::from_secs(90)),
        None,
    );
    // A date in the past means "now".
    check(
        &[("retry-after", "Thu, 20 Nov 2025 06:00:00 GMT")],
        "",
        Some(Duration::ZERO),
        None,
    );
    check(
        &[("retry-after", "1.5")],
        "",
        Some(Duration::from_millis(1500)),
        None,
    );
}

#[test]
fn garbage_yields_no_hint() {
    check(&[("retry-after", "soon")], "not json", None, None);
    check(&[("retry-after", "-3")], "{}", None, None);
    check(&[("retry-after-ms", "NaN")], "", None, None);
    check(
        &[],
        r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"soon"}]}}"#,
        None,
        None,
    );
    check(&[], r#"{"error":"flat string"}"#, None, None);
    check(&[], "[1,2,3]", None, None);
    assert!(RetryHint::default().is_empty());
}

#[test]
fn absurd_delays_are_clamped() {
    check(&[("retry-after", "99999999999")], "", Some(MAX_HINT), None);
    check(
        &[],
        r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"9999999h"}]}}"#,
        Some(MAX_HINT),
        None,
    );
}

#[test]
fn google_durations() {
    let cases = [
        ("3s", Some(Duration::from_secs(3))),
        ("0.5s", Some(Duration::from_millis(500))),
        ("373.5ms", Some(Duration::from_micros(373_500))),
        ("1h2m3s", Some(Duration::from_secs(3723))),
        ("26m34s", Some(Duration::from_secs(26 * 60 + 34))),
        ("", None),
        ("s", None),
        ("3", None),
        ("3d", None),
        ("1..2s", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_google_duration(text), expected, "{text:?}");
    }
}

#[test]
fn openai_message_forms() {
    let cases = [
        ("Please try again in 20s.", Some(Duration::from_secs(20))),
        (
            "please try again in 250ms",
            Some(Duration::from_millis(250)),
        ),
        ("Try again in 1m30s", Some(Duration::from_secs(90))),
        ("try again in 20 seconds", Some(Duration::from_secs(20))),
        ("try again in 2 minutes", Some(Duration::from_secs(120))),
        ("try again later", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_try_again_in(text), expected, "{text:?}");
    }
}

/// Cloud Code's `streamGenerateContent` without `alt=sse` answers (and logs) its errors as a JSON
/// array of one error object.
const ARRAY_CAPACITY: &str = r#"[{
  "error": {
    "code": 429,
    "message": "No capacity available for model claude-sonnet-4-5 on the server",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "MODEL_CAPACITY_EXHAUSTED",
        "domain": "cloudcode-pa.googleapis.com",
        "metadata": {"model": "claude-sonnet-4-5"}
      }
    ]
  }
}]"#;

const ARRAY_WEEKLY_QUOTA: &str = r#"[
  {
    "error": {
      "code": 429,
      "message": "You have exhausted your capacity on this model. Your quota will reset after 108h12m30s.",
      "status": "RESOURCE_EXHAUSTED",
      "details": [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          "reason": "QUOTA_EXHAUSTED",
          "domain": "cloudcode-pa.googleapis.com",
          "metadata": {"uiMessage": "true", "model": "claude-opus-4-5-thinking", "quotaResetDelay": "108h12m30.25s", "quotaResetTimeStamp": "2025-11-24T19:12:30Z"}
        }
      ]
    }
  }
]"#;

const ARRAY_RATE_LIMIT: &str = r#"[{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED",
  "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"cloudcode-pa.googleapis.com","metadata":{"quotaResetDelay":"1.5s"}},
  {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}]"#;

#[test]
fn google_bodies_wrapped_in_an_array() {
    let weekly = Duration::from_secs(108 * 3600 + 12 * 60 + 30) + Duration::from_millis(250);
    let cases: [(&str, Option<Duration>, Option<&str>); 6] = [
        (ARRAY_CAPACITY, None, Some("MODEL_CAPACITY_EXHAUSTED")),
        (ARRAY_WEEKLY_QUOTA, Some(weekly), Some("QUOTA_EXHAUSTED")),
        (
            ARRAY_RATE_LIMIT,
            Some(Duration::from_millis(1500)),
            Some("RATE_LIMIT_EXCEEDED"),
        ),
        // The object form still wins nothing over the array: the same hint either way.
        (
            &format!("[{GOOGLE_RATE_LIMIT}]"),
            Some(Duration::from_nanos(3_069_447_862)),
            Some("RATE_LIMIT_EXCEEDED"),
        ),
        // Arrays that hold no error say nothing.
        ("[]", None, None),
        (r#"[{"candidates": []}]"#, None, None),
    ];
    for (body, delay, reason) in cases {
        check(&[], body, delay, reason);
    }
}

#[test]
fn error_messages_are_found_in_both_forms() {
    let value = |body: &str| serde_json::from_str::<Value>(body).unwrap();
    let cases = [
        (
            ARRAY_CAPACITY,
            Some("No capacity available for model claude-sonnet-4-5 on the server"),
        ),
        (
            ARRAY_WEEKLY_QUOTA,
            Some(
                "You have exhausted your capacity on this model. Your quota will reset after 108h12m30s.",
            ),
        ),
        (
            GOOGLE_QUOTA_EXHAUSTED,
            Some("Resource has been exhausted (e.g. check quota)."),
        ),
        (r#"{"error":"flat string"}"#, Some("flat string")),
        (r#"[{"error":"flat string"}]"#, Some("flat string")),
        (r#"{"message":"bare"}"#, Some("bare")),
        ("[]", None),
        ("[1,2,3]", None),
        ("{}", None),
    ];
    for (body, message) in cases {
        assert_eq!(error_message(&value(body)), message, "{body}");
    }
}

#[test]
fn upstream_errors_in_the_array_form_keep_message_reason_and_reset() {
    let error = crate::GatewayError::from_upstream_response(
        http::StatusCode::TOO_MANY_REQUESTS,
        &HeaderMap::new(),
        bytes::Bytes::from_static(ARRAY_WEEKLY_QUOTA.as_bytes()),
        "https://cloudcode-pa.googleapis.com:443",
    );
    assert_eq!(
        error.message(),
        "You have exhausted your capacity on this model. Your quota will reset after 108h12m30s."
    );
    let hint = error.retry_hint().unwrap();
    assert_eq!(hint.reason.as_deref(), Some("QUOTA_EXHAUSTED"));
    // Measured against the real clock: the reset is 108 hours away, not a day.
    assert!(
        error.retry_after().unwrap() > Duration::from_secs(108 * 3600),
        "{hint:?}"
    );

    let error = crate::GatewayError::from_upstream_response(
        http::StatusCode::TOO_MANY_REQUESTS,
        &HeaderMap::new(),
        bytes::Bytes::from_static(ARRAY_CAPACITY.as_bytes()),
        "https://cloudcode-pa.googleapis.com:443",
    );
    assert_eq!(
        error.message(),
        "No capacity available for model claude-sonnet-4-5 on the server"
    );
    assert_eq!(
        error.retry_hint().and_then(|h| h.reason.as_deref()),
        Some("MODEL_CAPACITY_EXHAUSTED")
    );
}
