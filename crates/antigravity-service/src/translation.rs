//! The translation alone, without the account pool or the network: a conversation into the
//! Gemini request Antigravity takes, and Antigravity's stream events back into conversation
//! events. For crates that reach Cloud Code (or a Gemini-shaped upstream) their own way.
//!
//! ```
//! use antigravity_service::Translator;
//! use gateway_core::{
//!     conversation::{Event, FinishReason},
//!     openai::{self, ChatRequest, parse_json},
//! };
//!
//! let chat: ChatRequest =
//!     parse_json(br#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#)?;
//! let translator = Translator::new(1_000);
//! let request = translator.request(&openai::request_to_conversation(chat)?, None)?;
//! assert_eq!(request.model(), "gemini-2.5-flash");
//! assert_eq!(request.body()["contents"][0]["parts"][0]["text"], "hi");
//!
//! let mut events = request.events("resp-1");
//! let mut seen = events.push(
//!     r#"{"response":{"candidates":[{"content":{"role":"model","parts":[{"text":"hello"}]},"finishReason":"STOP"}]}}"#,
//! )?;
//! seen.extend(events.finish()?);
//! assert!(seen.contains(&Event::Finish { reason: FinishReason::Stop }));
//! # Ok::<(), gateway_core::GatewayError>(())
//! ```

use std::sync::Arc;

use serde_json::Value;

use gateway_core::{
    GatewayError,
    conversation::{Event, Request},
};

use crate::{
    models::Family, names::ToolNames, request::translate, response::StreamTranslator,
    signatures::SignatureCache,
};

/// Translates conversations, remembering the thought signatures its answers carried so a later
/// turn from a client that cannot carry them (OpenAI Chat) gets them back.
#[derive(Debug, Clone)]
pub struct Translator {
    cache: Arc<SignatureCache>,
}

impl Translator {
    /// A translator that remembers up to `signature_capacity` signatures.
    pub fn new(signature_capacity: usize) -> Self {
        Self {
            cache: Arc::new(SignatureCache::new(signature_capacity)),
        }
    }

    /// Translate `request`; `conversation_id` keys the upstream session (else the first user
    /// message does). Unsupported input is a 400 naming the field.
    pub fn request(
        &self,
        request: &Request,
        conversation_id: Option<&str>,
    ) -> Result<Translated, GatewayError> {
        let translated = translate(
            request,
            &self.cache,
            conversation_id,
            crate::Profile::Antigravity,
        )?;
        let body = serde_json::to_value(&translated.request)
            .map_err(|e| GatewayError::internal(format!("cannot encode the request: {e}")))?;
        Ok(Translated {
            model: translated.spec.upstream,
            client_model: request.model.clone(),
            family: translated.spec.family,
            names: translated.names,
            body,
            cache: self.cache.clone(),
        })
    }
}

/// One translated request, and how to read its answer.
#[derive(Debug)]
pub struct Translated {
    model: String,
    client_model: String,
    family: Family,
    names: ToolNames,
    body: Value,
    cache: Arc<SignatureCache>,
}

impl Translated {
    /// The upstream model id (the canonical table applied to the client's name).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The Gemini `GenerateContentRequest` (Antigravity's envelope `request` field).
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// A reader for the answer's stream events, for response `id`.
    pub fn events(&self, id: &str) -> Events {
        Events {
            inner: StreamTranslator::new(
                id.to_owned(),
                self.client_model.clone(),
                self.names.clone(),
                self.family,
                self.cache.clone(),
            ),
        }
    }
}

/// Antigravity stream events (the `data` of each server-sent event) into conversation events.
#[derive(Debug)]
pub struct Events {
    inner: StreamTranslator,
}

impl Events {
    /// Translate one event's `data`.
    pub fn push(&mut self, data: &str) -> Result<Vec<Event>, GatewayError> {
        self.inner.event(data)
    }

    /// The stream ended: the finish and the usage, or the truncation error.
    pub fn finish(&mut self) -> Result<Vec<Event>, GatewayError> {
        self.inner.finish()
    }
}
