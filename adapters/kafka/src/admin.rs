//! Topic administration.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use refold::error::{Error, ErrorKind, Result};

use crate::connection::KafkaConnection;
use crate::context::KafkaContext;
use crate::kafka_err;

/// How long the broker may take to carry out an admin operation.
const ADMIN_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

fn admin(conn: &KafkaConnection) -> Result<AdminClient<KafkaContext>> {
    conn.client_config()
        .create_with_context(conn.context())
        .map_err(kafka_err(format!("kafka admin for {conn}")))
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(ADMIN_OPERATION_TIMEOUT))
}

/// Creates a topic with `partitions` partitions (replication 1); an existing topic is fine.
/// Authenticated as the environment says.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    create_topic_on(&KafkaConnection::from_env(brokers)?, topic, partitions).await
}

/// As [`create_topic`], on `conn`.
pub async fn create_topic_on(conn: &KafkaConnection, topic: &str, partitions: i32) -> Result<()> {
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin(conn)?
        .create_topics([&new], &options())
        .await
        .map_err(kafka_err(format!("create topic {topic}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("create topic {t}: {code}"),
                ));
            }
        }
    }
    Ok(())
}
