"""One kafka-python consumer-group member, driven by the interop tests.

Usage: group_member.py BOOTSTRAP GROUP TOPIC NAME ASSIGNOR

Subscribes to TOPIC as a member of GROUP with the given assignor ("sticky", "range",
"roundrobin"), commits every record synchronously, and prints one JSON object per line:
  {"event": "assigned", "partitions": [...]}   rebalance listener, full assignment (eager)
  {"event": "revoked", "partitions": [...]}
  {"event": "record", "partition": p, "offset": o, "value": v}   only once its commit succeeded
A failed commit seeks back to the record so that it is read again. The member stops, closing
the consumer (which leaves the group), when a line "stop" arrives on stdin or stdin closes.
"""

import json
import sys
import threading

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.structs import OffsetAndMetadata

ASSIGNORS = {
    "sticky": StickyPartitionAssignor,
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
}

out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        emit({"event": "revoked", "partitions": sorted(tp.partition for tp in revoked)})

    def on_partitions_assigned(self, assigned):
        emit({"event": "assigned", "partitions": sorted(tp.partition for tp in assigned)})


def main():
    bootstrap, group, topic, name, assignor = sys.argv[1:6]
    stop = threading.Event()

    def watch_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=[ASSIGNORS[assignor]],
        session_timeout_ms=10000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
    )
    consumer.subscribe([topic], listener=Listener())
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=100, max_records=1)
        for tp, records in batches.items():
            for r in records:
                try:
                    consumer.commit({tp: OffsetAndMetadata(r.offset + 1, "", -1)})
                except Exception as e:  # CommitFailedError and friends: read it again
                    sys.stderr.write(f"{name}: commit of {tp.partition}@{r.offset} failed: {e}\n")
                    try:
                        consumer.seek(tp, r.offset)
                    except Exception:
                        pass
                    break
                emit({
                    "event": "record",
                    "partition": tp.partition,
                    "offset": r.offset,
                    "value": r.value.decode(),
                })
    consumer.close(autocommit=False)
    emit({"event": "closed"})


if __name__ == "__main__":
    main()
