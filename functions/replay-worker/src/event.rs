//! The replay-worker's event: a shard invocation (`ShardTask`, from the replay API or from a
//! shard continuing itself) or a promotion (`{"promote": PromoteTask}`, from the API).

use refold::replay::ShardTask;
use refold_aws::invoke::PromoteTask;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkerEvent {
    Promote { promote: PromoteTask },
    Shard(ShardTask),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shard_and_promote_events_parse() {
        let id = "20261202t050000z-0123abcd";
        let shard: WorkerEvent = serde_json::from_value(
            json!({"pipeline": "p", "replay_id": id, "shard": 2, "invocation": 1}),
        )
        .unwrap();
        assert!(matches!(shard, WorkerEvent::Shard(t) if t.shard == 2 && t.invocation == 1));
        let promote: WorkerEvent =
            serde_json::from_value(json!({"promote": {"pipeline": "p", "replay_id": id}})).unwrap();
        assert!(matches!(promote, WorkerEvent::Promote { promote } if promote.pipeline == "p"));
        assert!(serde_json::from_value::<WorkerEvent>(json!({"pipeline": "p"})).is_err());
    }
}
