//! Dead letters to a Kafka topic.

use async_trait::async_trait;
use rdkafka::producer::{FutureProducer, FutureRecord};

use refold::dead_letter::{DeadLetter, DeadLetterStore};
use refold::error::{Error, ErrorKind, Result};

use crate::connection::KafkaConnection;
use crate::context::KafkaContext;
use crate::kafka_err;
use crate::producer::{delivered, enqueue, join_in_order, producer_config};

/// Dead letters to a Kafka topic: one message per dead letter, the dead letter's JSON as the
/// value, the original key as the key. `put` returns when every message is acknowledged.
pub struct KafkaDeadLetters {
    producer: FutureProducer<KafkaContext>,
    topic: String,
}

impl KafkaDeadLetters {
    /// Dead letters to `topic` at `brokers`, authenticated as the environment says.
    pub fn new(brokers: &str, topic: impl Into<String>) -> Result<Self> {
        Self::connect(&KafkaConnection::from_env(brokers)?, topic)
    }

    /// Dead letters to `topic` on `conn`.
    pub fn connect(conn: &KafkaConnection, topic: impl Into<String>) -> Result<Self> {
        let producer = producer_config(conn)
            .create_with_context(conn.context())
            .map_err(kafka_err(format!("kafka producer for {conn}")))?;
        Ok(Self {
            producer,
            topic: topic.into(),
        })
    }
}

#[async_trait]
impl DeadLetterStore for KafkaDeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        let bodies: Vec<Vec<u8>> = batch
            .iter()
            .map(|d| {
                serde_json::to_vec(d).map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!(
                            "serialize the dead letter of partition {} offset {}",
                            d.partition, d.offset
                        ),
                    )
                    .with_source(e)
                })
            })
            .collect::<Result<_>>()?;
        let mut pending = Vec::with_capacity(batch.len());
        for (d, body) in batch.iter().zip(&bodies) {
            let mut rec: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).payload(body.as_slice());
            if let Some(k) = &d.key {
                rec = rec.key(k.as_slice());
            }
            pending.push(enqueue(&self.producer, rec, &self.topic).await?);
        }
        for r in join_in_order(pending).await {
            delivered(r, &self.topic)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("kafka topic {}", self.topic)
    }
}
