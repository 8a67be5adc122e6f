//! The replay API's routes, as a function of (method, path, body) to (status, JSON body):
//! free of any HTTP or Lambda type, so it is tested with in-memory ports.
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/v1/pipelines/{pipelineId}/replay` | 202 `{replay_id, status_url, target_table, shards}` |
//! | GET | `/v1/pipelines/{pipelineId}/replays` | 200 every replay's status |
//! | GET | `/v1/pipelines/{pipelineId}/replays/{replayId}` | 200 state, per-shard progress, events/s, ETA |
//! | DELETE | `/v1/pipelines/{pipelineId}/replays/{replayId}` | 202 cancelled (workers stop at their next batch) |
//! | POST | `/v1/pipelines/{pipelineId}/replays/{replayId}/promote` | 202 promotion started (in the worker; the status says `promoted` when done) |
//!
//! Errors answer `{"error": ..., "field": ...}`: 400 naming the field, 404 for an unknown
//! pipeline, replay or route, 405 for a known path with another method, 409 for a replay
//! already running into the same target, 413 for a body over the limit.

use std::sync::Arc;

use async_trait::async_trait;
use refold::error::{Error, Result};
use refold::replay::request::MAX_REQUEST_BODY_BYTES;
use refold::replay::{Problem, ReplayService, ReplayState};
use refold_aws::invoke::PromoteTask;
use serde_json::{Value, json};

/// Starts a promotion somewhere it may run for minutes (the replay-worker on Lambda).
#[async_trait]
pub trait Promoter: Send + Sync {
    async fn start(&self, task: &PromoteTask) -> Result<()>;
}

/// What the routes answer with.
pub struct Api {
    pub service: ReplayService,
    pub promoter: Arc<dyn Promoter>,
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(status: u16, body: impl serde::Serialize) -> Self {
        match serde_json::to_value(body) {
            Ok(body) => Self { status, body },
            Err(e) => Self::problem(500, format!("encode the answer: {e}"), None),
        }
    }

    fn problem(status: u16, error: impl Into<String>, field: Option<&str>) -> Self {
        let mut body = json!({ "error": error.into() });
        if let Some(f) = field {
            body["field"] = json!(f);
        }
        Self { status, body }
    }

    fn of_error(e: &Error) -> Self {
        let p = Problem::of(e);
        if p.status >= 500 {
            tracing::error!(error = %e, "replay API request failed");
        }
        Self::problem(p.status, p.error, p.field.as_deref())
    }
}

/// The route a request names: the path's segments after `/v1/pipelines/`.
enum Route<'p> {
    Start(&'p str),
    List(&'p str),
    Replay(&'p str, &'p str),
    Promote(&'p str, &'p str),
}

fn route_of(path: &str) -> Option<Route<'_>> {
    let rest = path.trim_end_matches('/').strip_prefix("/v1/pipelines/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(match parts.as_slice() {
        [p, "replay"] => Route::Start(p),
        [p, "replays"] => Route::List(p),
        [p, "replays", id] => Route::Replay(p, id),
        [p, "replays", id, "promote"] => Route::Promote(p, id),
        _ => return None,
    })
}

/// The path of a replay's status.
pub fn status_url(pipeline: &str, replay_id: &str) -> String {
    format!("/v1/pipelines/{pipeline}/replays/{replay_id}")
}

/// Starts the promotion of a finished replay; a replay in any other state is refused (409).
async fn promote(api: &Api, pipeline: &str, replay_id: &str) -> Result<Answer> {
    let st = api.service.status(pipeline, replay_id).await?;
    if st.state != ReplayState::Done {
        let state = serde_json::to_value(st.state).unwrap_or(Value::Null);
        return Ok(Answer::problem(
            409,
            format!("replay {replay_id} is {state}: only a finished (done) replay is promoted"),
            None,
        ));
    }
    let task = PromoteTask {
        pipeline: pipeline.to_owned(),
        replay_id: st.replay_id.clone(),
    };
    api.promoter.start(&task).await?;
    Ok(Answer {
        status: 202,
        body: json!({
            "replay_id": st.replay_id,
            "state": "promoting",
            "live_table": st.target_table,
            "status_url": status_url(pipeline, st.replay_id.as_str()),
        }),
    })
}

/// Answers one request.
pub async fn answer(api: &Api, method: &str, path: &str, body: &[u8]) -> Answer {
    let service = &api.service;
    let Some(route) = route_of(path) else {
        return Answer::problem(404, format!("no route {method} {path:.200}"), None);
    };
    if body.len() > MAX_REQUEST_BODY_BYTES {
        return Answer::problem(
            413,
            format!(
                "request body is {} bytes, over the limit of {MAX_REQUEST_BODY_BYTES}",
                body.len()
            ),
            Some("body"),
        );
    }
    let res = match (method, route) {
        ("POST", Route::Start(p)) => service.start(p, body).await.map(|s| {
            let url = status_url(p, s.replay_id.as_str());
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            v["status_url"] = json!(url);
            Answer {
                status: 202,
                body: v,
            }
        }),
        ("GET", Route::List(p)) => service.list(p).await.map(|l| Answer::ok(200, l)),
        ("GET", Route::Replay(p, id)) => service.status(p, id).await.map(|s| Answer::ok(200, s)),
        ("DELETE", Route::Replay(p, id)) => service.cancel(p, id).await.map(|s| Answer::ok(202, s)),
        ("POST", Route::Promote(p, id)) => promote(api, p, id).await,
        _ => return Answer::problem(405, format!("{method} is not allowed on {path:.200}"), None),
    };
    res.unwrap_or_else(|e| Answer::of_error(&e))
}
