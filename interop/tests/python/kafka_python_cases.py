"""kafka-python cases for interop/tests/clients_kafka_python.rs.

Usage: kafka_python_cases.py CASE BOOTSTRAP

Runs one case against the broker and prints one JSON object on the last line of stdout:
what the client saw (offsets, records, admin results), for the Rust test to assert on, or
{"error": "..."} when a call failed. Records follow common/client.rs `records`.
"""

import sys
import threading
import time
import traceback

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec

from case_runner import BASE_TIMESTAMP_MS, CODECS, RECORDS_PER_CODEC, TIMEOUT_S, record, run_case


def produce(bootstrap, topic, recs, **extra):
    """Produces recs to partition 0 of topic; returns the acknowledged offsets in order."""
    conf = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    conf.update(extra)
    p = KafkaProducer(**conf)
    futures = [
        p.send(
            topic,
            key=None if r["k"] is None else r["k"].encode(),
            value=r["v"].encode(),
            headers=[(k, v.encode()) for k, v in r["h"]],
            timestamp_ms=r["ts"],
            partition=0,
        )
        for r in recs
    ]
    p.flush(timeout=TIMEOUT_S)
    acked = [f.get(timeout=TIMEOUT_S).offset for f in futures]
    p.close(timeout=TIMEOUT_S)
    return acked


def as_json(r):
    return {
        "p": r.partition,
        "o": r.offset,
        "k": None if r.key is None else r.key.decode(),
        "v": r.value.decode(),
        "h": [[k, v.decode()] for k, v in (r.headers or [])],
        "ts": r.timestamp,
    }


def consume(bootstrap, topic, count):
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    deadline = time.time() + TIMEOUT_S
    while len(out) < count and time.time() < deadline:
        for records in c.poll(timeout_ms=200).values():
            out.extend(as_json(r) for r in records)
    c.close()
    return out


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)


def case_codecs(bootstrap):
    out = {}
    for codec in CODECS:
        topic = f"codec-{codec}"
        try:
            recs = [record(codec, i) for i in range(RECORDS_PER_CODEC)]
            compression = None if codec == "none" else codec
            produced = produce(bootstrap, topic, recs, compression_type=compression)
            out[codec] = {"produced": produced, "consumed": consume(bootstrap, topic, len(recs))}
        except Exception as e:
            traceback.print_exc()
            out[codec] = {"error": repr(e)}
    return {"codecs": out}


def case_group(bootstrap):
    """Two members of one group (one thread each) share four partitions and commit each
    record they read."""
    topic, group, count = "grouped", "kafka-python-group", 40
    a = admin(bootstrap)
    a.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
    members = [
        KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, client_id=f"m{i}",
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=10000, heartbeat_interval_ms=500, fetch_max_wait_ms=100)
        for i in range(2)
    ]
    consumed = [[], []]
    produced = threading.Event()
    done = threading.Event()
    errors = []
    assignments = [None, None]

    def run(i):
        m = members[i]
        try:
            while not done.is_set():
                for tp, records in m.poll(timeout_ms=100).items():
                    for r in records:
                        m.commit({tp: __import__("kafka").structs.OffsetAndMetadata(r.offset + 1, "", -1)})
                        consumed[i].append({"p": r.partition, "o": r.offset, "v": r.value.decode()})
                if not produced.is_set():
                    assignments[i] = sorted(tp.partition for tp in m.assignment())
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 30
    while time.time() < deadline and [len(x or []) for x in assignments] != [2, 2]:
        time.sleep(0.05)
    time.sleep(0.3)
    produced.set()
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(count):
        p.send(topic, value=f"g-{i}".encode(), partition=i % 4)
    p.flush(timeout=TIMEOUT_S)
    p.close()
    deadline = time.time() + 30
    while time.time() < deadline and sum(len(c) for c in consumed) < count and not errors:
        time.sleep(0.05)
    done.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors)
    committed = {str(p): members[0].committed(TopicPartition(topic, p)) for p in range(4)}
    for m in members:
        m.close()
    return {"assignments": assignments, "consumed": consumed, "committed": committed}


def case_admin_topics(bootstrap):
    a = admin(bootstrap)
    out = {}
    a.create_topics({"admin-t": {"num_partitions": 3, "replication_factor": 1,
                                 "configs": {"retention.ms": "3600000"}}})
    out["listed"] = sorted(a.list_topics())
    d = a.describe_topics(["admin-t"])[0]
    out["described"] = {"name": d["name"], "partitions": len(d["partitions"])}
    out["topic_configs"] = describe_configs(a, ConfigResourceType.TOPIC, "admin-t")
    a.create_partitions({"admin-t": 5})
    out["partitions_after"] = len(a.describe_topics(["admin-t"])[0]["partitions"])
    a.delete_topics(["admin-t"])
    deadline = time.time() + 10
    while time.time() < deadline:
        listed = a.list_topics()
        if "admin-t" not in listed:
            break
        time.sleep(0.1)
    out["listed_after_delete"] = sorted(listed)
    return out


def describe_configs(a, kind, name):
    """{config name: value} of one resource, every config (not only modified ones)."""
    result = a.describe_configs([ConfigResource(kind, name)], config_filter="all")
    sys.stderr.write(f"describe_configs {kind} {name}: {result!r}\n")
    (by_name,) = result.values()
    (configs,) = by_name.values()
    return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in configs.items()}


def case_broker_configs(bootstrap):
    a = admin(bootstrap)
    return {"configs": describe_configs(a, ConfigResourceType.BROKER, "0")}


def case_delete_records(bootstrap):
    topic = "trimmed"
    produce(bootstrap, topic, [record("none", i) for i in range(RECORDS_PER_CODEC)])
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    deleted = a.delete_records({tp: 4})
    sys.stderr.write(f"delete_records: {deleted!r}\n")
    low = list(deleted.values())[0]
    low = low.get("low_watermark") if isinstance(low, dict) else low
    earliest = a.list_partition_offsets({tp: OffsetSpec.EARLIEST})[tp].offset
    return {"low_watermark": low, "earliest": earliest, "first": consume(bootstrap, topic, 1)[0]["o"]}


def case_list_offsets(bootstrap):
    topic = "listed"
    produce(bootstrap, topic, [record("none", i) for i in range(RECORDS_PER_CODEC)])
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    out = {}
    for name, spec in [("earliest", OffsetSpec.EARLIEST), ("latest", OffsetSpec.LATEST),
                       ("max_timestamp", OffsetSpec.MAX_TIMESTAMP),
                       ("at_3500", BASE_TIMESTAMP_MS + 3500)]:
        r = a.list_partition_offsets({tp: spec})[tp]
        out[name] = {"offset": r.offset, "timestamp": r.timestamp}
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    out["consumer"] = {"beginning": c.beginning_offsets([tp])[tp], "end": c.end_offsets([tp])[tp]}
    c.close()
    return out


def case_offsets_for_times(bootstrap):
    topic = "timed"
    produce(bootstrap, topic, [record("none", i) for i in range(RECORDS_PER_CODEC)])
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic, 0)
    out = {}
    for name, ts in [("before_first", BASE_TIMESTAMP_MS - 1), ("at_3500", BASE_TIMESTAMP_MS + 3500),
                     ("at_9000", BASE_TIMESTAMP_MS + 9000), ("after_last", BASE_TIMESTAMP_MS + 100_000)]:
        r = c.offsets_for_times({tp: ts})[tp]
        out[name] = -1 if r is None else r.offset
    c.close()
    return out


def case_groups_admin(bootstrap):
    """A group that committed and left: listed, described, its offsets, then deleted."""
    topic, group = "grouped-admin", "kafka-python-admin-g"
    produce(bootstrap, topic, [record("none", i) for i in range(4)])
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100)
    read = 0
    deadline = time.time() + 30
    while read < 4 and time.time() < deadline:
        read += sum(len(r) for r in c.poll(timeout_ms=200).values())
    c.commit()
    c.close()
    a = admin(bootstrap)
    out = {}
    listed = a.list_groups()
    sys.stderr.write(f"list_groups: {listed!r}\n")
    out["listed"] = sorted(g["group_id"] for g in listed)
    described = a.describe_groups([group])
    sys.stderr.write(f"describe_groups: {described!r}\n")
    d = described[0] if isinstance(described, list) else described[group]
    out["described"] = {"state": d["group_state"], "members": len(d["members"])}
    offsets = a.list_group_offsets({group: None})[group]
    out["offsets"] = {f"{tp.topic}-{tp.partition}": o.offset for tp, o in offsets.items()}
    sys.stderr.write(f"delete_groups: {a.delete_groups([group])!r}\n")
    out["listed_after_delete"] = sorted(g["group_id"] for g in a.list_groups())
    return out


def case_idempotence(bootstrap):
    topic = "idempotent"
    recs = [record("zstd", i) for i in range(RECORDS_PER_CODEC)]
    produced = produce(bootstrap, topic, recs, enable_idempotence=True, compression_type="zstd")
    return {"produced": produced, "consumed": consume(bootstrap, topic, len(recs))}


def case_compacted_keyless(bootstrap):
    topic = "compacted"
    a = admin(bootstrap)
    a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1,
                             "configs": {"cleanup.policy": "compact"}}})
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, enable_idempotence=False)
    try:
        offset = p.send(topic, value=b"no key", partition=0).get(timeout=TIMEOUT_S).offset
        return {"delivery_error": None, "offset": offset}
    except Exception as e:
        return {"delivery_error": type(e).__name__, "detail": repr(e)}


if __name__ == "__main__":
    run_case(globals())
