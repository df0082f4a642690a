//! The streaming body every crate passes around, and small constructors for it.
//!
//! [`Body`] is a boxed [`http_body::Body`] of [`Bytes`] whose errors are [`GatewayError`]s, so a
//! failure in the middle of a stream carries its kind to whoever reads it. It is `Send` but not
//! `Sync`, which is what hyper needs and what a stream adapter can promise.

use bytes::Bytes;
use futures_core::Stream;
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody, combinators::UnsyncBoxBody};

use crate::GatewayError;

/// A streaming HTTP body of bytes with [`GatewayError`] as its error type.
pub type Body = UnsyncBoxBody<Bytes, GatewayError>;

/// A body with no bytes.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of one buffer.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body that yields each item of `stream` as one data frame.
pub fn from_stream<S>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, GatewayError>> + Send + 'static,
{
    StreamBody::new(StreamMap { inner: stream }).boxed_unsync()
}

pin_project_lite::pin_project! {
    /// Maps a stream of buffers to a stream of data frames.
    struct StreamMap<S> {
        #[pin]
        inner: S,
    }
}

impl<S> Stream for StreamMap<S>
where
    S: Stream<Item = Result<Bytes, GatewayError>>,
{
    type Item = Result<Frame<Bytes>, GatewayError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.project()
            .inner
            .poll_next(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}
