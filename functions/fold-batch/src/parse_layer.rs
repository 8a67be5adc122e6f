//! The ESM event parsed from the invocation's raw body, ahead of lambda_runtime's own
//! deserializer.
//!
//! Why: lambda_runtime 1.5 reads every event through `serde_path_to_error`, which records
//! each key and value it passes. On a 10,000-record event (6.6 MB) that parse took 10.5 ms
//! against serde_json's 5.7 ms alone, and its 80,000 small allocations cost the rest of the
//! batch about as much again (BENCHMARKS.md, "The runtime's parse"). This layer parses the
//! body with serde_json directly and keeps the event under the invocation's request id; the
//! runtime then reads `{}` in its place (an empty event) and the handler takes the kept one
//! ([`ParsedEvents::take`]). A body this parse refuses goes through untouched, so the
//! runtime's own error, with its path, is what the caller sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{LambdaEvent, LambdaInvocation};

use crate::esm::EsmEvent;

/// Events kept at once: one per invocation in flight (Lambda sends one at a time unless
/// `AWS_LAMBDA_MAX_CONCURRENCY` says more). Past it a body goes to the runtime's parse.
const MAX_EVENTS_IN_FLIGHT: usize = 64;

/// What the handler gets the runtime to send in place of a parsed body.
const PARSED_BODY: &str = "{}";

/// The event of an invocation body, as this layer parses it: serde_json, no path tracking.
pub fn parse_body(body: &[u8]) -> serde_json::Result<EsmEvent> {
    serde_json::from_slice(body)
}

/// Events the layer parsed, by request id, until the handler takes them.
#[derive(Debug, Clone, Default)]
pub struct ParsedEvents(Arc<Mutex<HashMap<String, EsmEvent>>>);

impl ParsedEvents {
    /// The event of the invocation: the one the layer parsed, else the runtime's.
    pub fn take(&self, ev: LambdaEvent<EsmEvent>) -> EsmEvent {
        let kept = self
            .0
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&ev.context.request_id));
        kept.unwrap_or(ev.payload)
    }

    fn keep(&self, request_id: &str, event: EsmEvent) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        if m.len() >= MAX_EVENTS_IN_FLIGHT {
            return false;
        }
        m.insert(request_id.to_string(), event);
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// Parses each invocation's body into an [`EsmEvent`] for [`ParsedEvents::take`].
#[derive(Debug, Clone)]
pub struct ParseLayer {
    events: ParsedEvents,
}

impl ParseLayer {
    pub fn new(events: ParsedEvents) -> Self {
        Self { events }
    }
}

impl<S> Layer<S> for ParseLayer {
    type Service = ParseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ParseService {
            inner,
            events: self.events.clone(),
        }
    }
}

/// The service of [`ParseLayer`].
#[derive(Debug, Clone)]
pub struct ParseService<S> {
    inner: S,
    events: ParsedEvents,
}

impl<S> Service<LambdaInvocation> for ParseService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LambdaInvocation) -> Self::Future {
        if let Ok(event) = parse_body(&req.body)
            && self.events.keep(&req.context.request_id, event)
        {
            req.body = PARSED_BODY.into();
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::{Ready, ready};

    use super::*;

    /// The runtime's side: what body it got.
    #[derive(Clone, Default)]
    struct Runtime(Arc<Mutex<Vec<String>>>);

    impl Service<LambdaInvocation> for Runtime {
        type Response = ();
        type Error = lambda_runtime::Error;
        type Future = Ready<Result<(), lambda_runtime::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: LambdaInvocation) -> Self::Future {
            let body = String::from_utf8(req.body.to_vec()).unwrap();
            self.0.lock().unwrap().push(body);
            ready(Ok(()))
        }
    }

    fn invocation(request_id: &str, body: &'static str) -> LambdaInvocation {
        let (parts, ()) = http::Response::new(()).into_parts();
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.to_string();
        LambdaInvocation {
            parts,
            body: body.into(),
            context,
        }
    }

    const EVENT: &str = r#"{"eventSource":"aws:kafka","records":{"orders-0":[
        {"topic":"orders","partition":0,"offset":7,"timestamp":1700000000000,
         "key":"azE=","value":"eyJhIjoxfQ==","headers":[]}]}}"#;

    #[tokio::test]
    async fn a_parsed_body_is_kept_for_the_handler_and_the_runtime_reads_an_empty_event() {
        let (events, runtime) = (ParsedEvents::default(), Runtime::default());
        let mut svc = ParseLayer::new(events.clone()).layer(runtime.clone());
        svc.call(invocation("req-1", EVENT)).await.unwrap();
        assert_eq!(*runtime.0.lock().unwrap(), vec![PARSED_BODY.to_string()]);

        let from_runtime: EsmEvent = serde_json::from_str(PARSED_BODY).unwrap();
        let mut context = lambda_runtime::Context::default();
        context.request_id = "req-1".into();
        let event = events.take(LambdaEvent::new(from_runtime, context));
        assert_eq!(event, serde_json::from_str::<EsmEvent>(EVENT).unwrap());
        let record = &event.records["orders-0"][0];
        assert_eq!((record.offset, record.timestamp_ms), (7, 1_700_000_000_000));
        assert_eq!(events.len(), 0, "taken, not kept");
    }

    #[tokio::test]
    async fn a_body_the_parse_refuses_reaches_the_runtime_untouched() {
        let (events, runtime) = (ParsedEvents::default(), Runtime::default());
        let mut svc = ParseLayer::new(events.clone()).layer(runtime.clone());
        let bad = r#"{"records":{"orders-0":[{"partition":"zero"}]}}"#;
        svc.call(invocation("req-2", bad)).await.unwrap();
        assert_eq!(*runtime.0.lock().unwrap(), vec![bad.to_string()]);
        assert_eq!(events.len(), 0);
    }

    #[tokio::test]
    async fn past_the_limit_a_body_goes_to_the_runtime() {
        let (events, runtime) = (ParsedEvents::default(), Runtime::default());
        let mut svc = ParseLayer::new(events.clone()).layer(runtime.clone());
        for i in 0..=MAX_EVENTS_IN_FLIGHT {
            svc.call(invocation(&format!("req-{i}"), EVENT))
                .await
                .unwrap();
        }
        assert_eq!(events.len(), MAX_EVENTS_IN_FLIGHT);
        let bodies = runtime.0.lock().unwrap();
        assert_eq!(bodies.last().map(String::as_str), Some(EVENT));
        assert!(
            bodies[..MAX_EVENTS_IN_FLIGHT]
                .iter()
                .all(|b| b == PARSED_BODY)
        );
    }
}
