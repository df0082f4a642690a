//! [`TimedBody`]: an upstream response body under the first-byte, idle and total budgets.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use gateway_core::{ErrorKind, GatewayError, Timeouts};

use crate::client::describe_chain;

pin_project_lite::pin_project! {
    /// Relays an upstream body frame by frame. Before the first data frame the first-byte budget
    /// runs; after each data frame the idle budget restarts; the total deadline covers the whole
    /// attempt. Each expiry is its own error kind. Dropping it drops the upstream body, which
    /// aborts the request.
    pub(crate) struct TimedBody {
        #[pin]
        inner: Incoming,
        #[pin]
        timer: Sleep,
        armed: bool,
        first_byte: Option<Duration>,
        idle: Option<Duration>,
        total_deadline: Option<Instant>,
        started: bool,
        done: bool,
        target: String,
    }
}

impl TimedBody {
    pub(crate) fn new(
        inner: Incoming,
        timeouts: &Timeouts,
        total_deadline: Option<Instant>,
        target: String,
    ) -> Self {
        let mut body = Self {
            inner,
            timer: tokio::time::sleep_until(Instant::now()),
            armed: false,
            first_byte: timeouts.first_byte,
            idle: timeouts.idle,
            total_deadline,
            started: false,
            done: false,
            target,
        };
        let (at, armed) = body.next_deadline();
        body.timer = tokio::time::sleep_until(at);
        body.armed = armed;
        body
    }

    /// The next expiry and whether there is one at all.
    fn next_deadline(&self) -> (Instant, bool) {
        let phase = if self.started {
            self.idle
        } else {
            self.first_byte
        };
        let phase_deadline = phase.map(|d| Instant::now() + d);
        match (phase_deadline, self.total_deadline) {
            (Some(a), Some(b)) => (a.min(b), true),
            (Some(at), None) | (None, Some(at)) => (at, true),
            (None, None) => (Instant::now(), false),
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = GatewayError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, GatewayError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = self.as_mut().project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_data() {
                    *self.as_mut().project().started = true;
                    let (at, armed) = self.next_deadline();
                    let this = self.as_mut().project();
                    this.timer.reset(at);
                    *this.armed = armed;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(err))) => {
                *self.as_mut().project().done = true;
                let message = format!(
                    "{} failed while sending the response body: {}",
                    self.target,
                    describe_chain(&err)
                );
                return Poll::Ready(Some(Err(
                    GatewayError::new(ErrorKind::Transport, message).with_source(err)
                )));
            }
            Poll::Ready(None) => {
                *self.as_mut().project().done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if !self.armed {
            return Poll::Pending;
        }
        ready!(self.as_mut().project().timer.poll(cx));
        let now = Instant::now();
        let total_expired = self.total_deadline.is_some_and(|at| at <= now);
        let (kind, budget) = if total_expired {
            (ErrorKind::AttemptTimeout, "the whole attempt")
        } else if self.started {
            (ErrorKind::IdleTimeout, "the next body chunk")
        } else {
            (ErrorKind::FirstByteTimeout, "the first body byte")
        };
        let limit = match kind {
            ErrorKind::IdleTimeout => self.idle,
            ErrorKind::FirstByteTimeout => self.first_byte,
            _ => None,
        };
        let limit = limit.map_or_else(String::new, |d| format!(" ({d:?})"));
        *self.as_mut().project().done = true;
        let message = format!("{} timed out waiting for {budget}{limit}", self.target);
        Poll::Ready(Some(Err(GatewayError::new(kind, message))))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
