"""Turns on time retention for a topic, as an operator would, and waits until the broker
has applied it: `cleanup.policy=delete` and `retention.ms` set with IncrementalAlterConfigs,
then the partitions' earliest offsets polled until every one has moved past 0.

Usage:
  kafka_retention.py --brokers HOST:PORT --topic T --retention-ms MS [--timeout-s 60]

Prints {"<partition>": <earliest offset>, ...} (the log starts). Exit 1 when the broker has
not moved every partition's start within the timeout. (tansu applies retention in its
maintenance task: `scripts/stack.sh` starts it with `maintenance_interval=1s`.)
"""
import argparse
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--retention-ms", required=True, type=int)
    ap.add_argument("--timeout-s", type=float, default=60.0)
    a = ap.parse_args()
    admin = KafkaAdminClient(bootstrap_servers=a.brokers)
    resource = ConfigResource(
        ConfigResourceType.TOPIC,
        a.topic,
        configs={"cleanup.policy": "delete", "retention.ms": str(a.retention_ms)},
    )
    # raise_on_unknown=False: tansu's DescribeConfigs lists no dynamic topic configs.
    result = admin.alter_configs([resource], raise_on_unknown=False, incremental=True)
    admin.close()
    print(f"alter_configs: {result}", file=sys.stderr)
    consumer = KafkaConsumer(bootstrap_servers=a.brokers)
    parts = [TopicPartition(a.topic, p) for p in sorted(consumer.partitions_for_topic(a.topic) or [])]
    if not parts:
        print(f"topic {a.topic} has no partitions", file=sys.stderr)
        return 1
    deadline = time.monotonic() + a.timeout_s
    while True:
        starts = consumer.beginning_offsets(parts)
        if all(o > 0 for o in starts.values()):
            print(json.dumps({str(tp.partition): o for tp, o in sorted(starts.items())}))
            return 0
        if time.monotonic() > deadline:
            print(f"retention not applied within {a.timeout_s} s: {starts}", file=sys.stderr)
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
