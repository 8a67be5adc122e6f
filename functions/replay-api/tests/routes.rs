//! The replay API's answers, through `routes::answer`, with in-memory ports: an in-memory
//! topic (offsets), an in-memory replay store, and an invoker that records what it was asked
//! to start. Each error case answers its status with a JSON error naming the field, and
//! starts nothing. Expectations are written by hand from the seed's request.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use refold::batch::CompiledPipeline;
use refold::replay::memory::MemoryTopic;
use refold::replay::store::memory::MemoryReplayStore;
use refold::replay::{ReplayService, ShardInvoker, ShardTask};
use refold::table::CatalogConfig;
use refold_aws::invoke::PromoteTask;
use replay_api::routes::{Api as RoutesApi, Promoter, answer};
use serde_json::{Value, json};

#[derive(Default)]
struct Recorder(Mutex<Vec<ShardTask>>);

#[async_trait]
impl ShardInvoker for Recorder {
    async fn invoke(&self, task: ShardTask) -> refold::error::Result<()> {
        self.0.lock().unwrap().push(task);
        Ok(())
    }
}

impl Recorder {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[derive(Default)]
struct Promotions(Mutex<Vec<PromoteTask>>);

#[async_trait]
impl Promoter for Promotions {
    async fn start(&self, task: &PromoteTask) -> refold::error::Result<()> {
        self.0.lock().unwrap().push(task.clone());
        Ok(())
    }
}

fn seed_pipeline() -> CompiledPipeline {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = std::fs::read_to_string(root.join("pipelines/order-events-pipeline.yaml")).unwrap();
    let env = |k: &str| (k == "KAFKA_CONNECTION").then(|| "127.0.0.1:9".to_owned());
    let loaded = refold::pipeline::parse(&yaml, "order-events-pipeline.yaml", &env);
    CompiledPipeline::compile(loaded.into_pipeline().unwrap()).unwrap()
}

const PIPELINE: &str = "order-events-pipeline";
const TOPIC: &str = "domain.orders.events";

struct Api {
    api: RoutesApi,
    invoked: Arc<Recorder>,
    promotions: Arc<Promotions>,
    _dir: tempfile::TempDir,
}

/// An API over a 4-partition topic holding 10 records per partition.
fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let topic = MemoryTopic::new(TOPIC, 4);
    for p in 0..4 {
        for i in 0..10 {
            let v = format!(r#"{{"n":{i}}}"#).into_bytes();
            topic
                .append(p, None, v, Some(1_770_000_000_000 + i))
                .unwrap();
        }
    }
    let invoked = Arc::new(Recorder::default());
    let service = ReplayService::new(
        seed_pipeline(),
        CatalogConfig::embedded(dir.path()).unwrap(),
        Arc::new(MemoryReplayStore::default()),
        Arc::new(topic),
        invoked.clone(),
    );
    let promotions = Arc::new(Promotions::default());
    Api {
        api: RoutesApi {
            service,
            promoter: promotions.clone(),
        },
        invoked,
        promotions,
        _dir: dir,
    }
}

async fn call(api: &Api, method: &str, path: &str, body: Value) -> (u16, Value) {
    let bytes = if body.is_null() {
        vec![]
    } else {
        body.to_string().into_bytes()
    };
    let a = answer(&api.api, method, path, &bytes).await;
    (a.status, a.body)
}

fn seed_request() -> Value {
    json!({
        "from_offset": "earliest",
        "target_consumer_group": "order-projection-replay-v1",
        "parallel_consumers": 4
    })
}

const START: &str = "/v1/pipelines/order-events-pipeline/replay";

#[tokio::test]
async fn start_answers_202_with_the_plan_and_invokes_one_worker_per_shard() {
    let api = api();
    let (status, body) = call(&api, "POST", START, seed_request()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["replay_id"].as_str().unwrap().to_owned();
    assert_eq!(
        body["status_url"],
        json!(format!("/v1/pipelines/{PIPELINE}/replays/{id}"))
    );
    let target = body["target_table"].as_str().unwrap();
    assert!(
        target.starts_with("domain.orders.current_state__replay_"),
        "{target}"
    );
    assert_eq!(body["shards"].as_array().unwrap().len(), 4);
    assert_eq!(api.invoked.count(), 4);

    let (status, st) = call(
        &api,
        "GET",
        &format!("/v1/pipelines/{PIPELINE}/replays/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["replay_id"], json!(id));
    assert_eq!(st["events_total"], json!(40));
    let (status, list) = call(
        &api,
        "GET",
        &format!("/v1/pipelines/{PIPELINE}/replays"),
        Value::Null,
    )
    .await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 1), "{list}");

    // Nothing ran (the invoker only records): not done, so promotion is refused.
    let promote = format!("/v1/pipelines/{PIPELINE}/replays/{id}/promote");
    let (status, body) = call(&api, "POST", &promote, Value::Null).await;
    assert_eq!(status, 409, "{body}");
    assert!(api.promotions.0.lock().unwrap().is_empty());

    // Cancel: 202, then the status says so.
    let url = format!("/v1/pipelines/{PIPELINE}/replays/{id}");
    let (status, body) = call(&api, "DELETE", &url, Value::Null).await;
    assert_eq!(status, 202, "{body}");
    let (_, st) = call(&api, "GET", &url, Value::Null).await;
    assert_eq!(st["state"], json!("cancelled"), "{st}");
}

#[tokio::test]
async fn bad_requests_answer_400_naming_the_field_and_start_nothing() {
    let api = api();
    let cases = [
        (
            json!({"from_offset": "yesterday", "target_consumer_group": "g", "parallel_consumers": 1}),
            "from_offset",
        ),
        (
            json!({"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 0}),
            "parallel_consumers",
        ),
        (
            json!({"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 5}),
            "parallel_consumers",
        ),
        (
            json!({"from_offset": "earliest", "parallel_consumers": 1}),
            "target_consumer_group",
        ),
        (
            json!({"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 1, "to_timestamp": "soon"}),
            "to_timestamp",
        ),
        (
            json!({"from_offset": "earliest", "target_consumer_group": "g", "parallel_consumers": 1, "paralel": 2}),
            "paralel",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = call(&api, "POST", START, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["field"], json!(field), "{body} -> {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let a = answer(&api.api, "POST", START, b"{not json").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(api.invoked.count(), 0);
}

#[tokio::test]
async fn unknown_pipeline_replay_and_route_answer_404_other_methods_405() {
    let api = api();
    let (s, b) = call(&api, "POST", "/v1/pipelines/nope/replay", seed_request()).await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = call(
        &api,
        "GET",
        &format!("/v1/pipelines/{PIPELINE}/replays/20260101T000000Z-abcdef"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 404, "{b}");
    let (s, _) = call(&api, "GET", "/v2/anything", Value::Null).await;
    assert_eq!(s, 404);
    let (s, _) = call(&api, "PUT", START, seed_request()).await;
    assert_eq!(s, 405);
    assert_eq!(api.invoked.count(), 0);
}

#[tokio::test]
async fn a_second_replay_into_the_same_target_answers_409() {
    let api = api();
    let mut req = seed_request();
    req["target"] = json!("orders_rebuild");
    let (s, b) = call(&api, "POST", START, req.clone()).await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = call(&api, "POST", START, req).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(api.invoked.count(), 4, "the refused replay started nothing");
}

#[tokio::test]
async fn an_oversized_body_answers_413() {
    let api = api();
    let big = vec![b' '; refold::replay::request::MAX_REQUEST_BODY_BYTES + 1];
    let a = answer(&api.api, "POST", START, &big).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(api.invoked.count(), 0);
}
