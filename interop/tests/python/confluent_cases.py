"""confluent-kafka (librdkafka inside its wheel) cases for interop/tests/clients_confluent.rs.

Usage: confluent_cases.py CASE BOOTSTRAP

Runs one case against the broker and prints one JSON object on the last line of stdout:
what the client saw (offsets, records, admin results), for the Rust test to assert on, or
{"error": "..."} when a call failed. Records follow common/client.rs `records`.
"""

import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from case_runner import BASE_TIMESTAMP_MS, CODECS, RECORDS_PER_CODEC, TIMEOUT_S, record, run_case


def produce(bootstrap, topic, recs, extra=None):
    """Produces recs to partition 0 of topic; returns the acknowledged offsets in order."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 20000}
    conf.update(extra or {})
    p = Producer(conf)
    acked = []
    errors = []

    def done(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked.append(msg.offset())

    for r in recs:
        p.produce(
            topic,
            key=None if r["k"] is None else r["k"].encode(),
            value=r["v"].encode(),
            headers=[(k, v.encode()) for k, v in r["h"]],
            timestamp=r["ts"],
            partition=0,
            on_delivery=done,
        )
    left = p.flush(TIMEOUT_S)
    if errors or left:
        raise RuntimeError(f"delivery failed: {errors}, {left} not delivered")
    return acked


def as_json(m):
    return {
        "p": m.partition(),
        "o": m.offset(),
        "k": None if m.key() is None else m.key().decode(),
        "v": m.value().decode(),
        "h": [[k, v.decode()] for k, v in (m.headers() or [])],
        "ts": m.timestamp()[1],
    }


def consume(bootstrap, topic, count, partitions=(0,)):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "confluent-reader",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
    })
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out = []
    deadline = time.time() + TIMEOUT_S
    while len(out) < count and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        out.append(as_json(m))
    c.close()
    return out


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def wait(futures):
    return {k: f.result(timeout=TIMEOUT_S) for k, f in futures.items()}


def case_codecs(bootstrap):
    out = {}
    for codec in CODECS:
        topic = f"codec-{codec}"
        try:
            recs = [record(codec, i) for i in range(RECORDS_PER_CODEC)]
            produced = produce(bootstrap, topic, recs, {"compression.type": codec})
            out[codec] = {"produced": produced, "consumed": consume(bootstrap, topic, len(recs))}
        except Exception as e:
            out[codec] = {"error": repr(e)}
    return {"codecs": out}


def case_group(bootstrap):
    """Two members of one group share four partitions; each commits what it read."""
    topic, group, count = "grouped", "confluent-group", 40
    a = admin(bootstrap)
    wait(a.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)]))
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        "fetch.wait.max.ms": 100,
        "partition.assignment.strategy": "range",
    }
    members = [Consumer(dict(conf, **{"client.id": f"m{i}"})) for i in range(2)]
    for m in members:
        m.subscribe([topic])
    deadline = time.time() + 30
    while time.time() < deadline:
        for m in members:
            m.poll(0.1)
        sizes = [len(m.assignment()) for m in members]
        if sizes == [2, 2]:
            break
    assignments = [sorted(tp.partition for tp in m.assignment()) for m in members]
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(count):
        p.produce(topic, value=f"g-{i}".encode(), partition=i % 4)
    p.flush(TIMEOUT_S)
    consumed = [[], []]
    deadline = time.time() + 30
    while sum(len(c) for c in consumed) < count and time.time() < deadline:
        for i, m in enumerate(members):
            msg = m.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            m.commit(message=msg, asynchronous=False)
            consumed[i].append({"p": msg.partition(), "o": msg.offset(), "v": msg.value().decode()})
    committed = members[0].committed([TopicPartition(topic, p) for p in range(4)], timeout=TIMEOUT_S)
    for m in members:
        m.close()
    return {
        "assignments": assignments,
        "consumed": consumed,
        "committed": {str(tp.partition): tp.offset for tp in committed},
    }


def listed(a, topic):
    """[topic] when Metadata for that one topic names it without error, else []."""
    t = a.list_topics(topic=topic, timeout=TIMEOUT_S).topics.get(topic)
    return [topic] if t is not None and t.error is None else []


def case_admin_topics(bootstrap):
    """CreateTopics, Metadata (for the one topic), DescribeTopics, DescribeConfigs,
    CreatePartitions and DeleteTopics. Metadata for every topic is case_list_all_topics."""
    a = admin(bootstrap)
    out = {}
    wait(a.create_topics([NewTopic("admin-t", num_partitions=3, replication_factor=1,
                                   config={"retention.ms": "3600000"})]))
    out["listed"] = listed(a, "admin-t")
    d = wait(a.describe_topics(TopicCollection(["admin-t"])))["admin-t"]
    out["described"] = {"name": d.name, "partitions": len(d.partitions), "internal": d.is_internal}
    cfg = wait(a.describe_configs([ConfigResource(ResourceType.TOPIC, "admin-t")]))
    entries = list(cfg.values())[0]
    out["topic_configs"] = {k: v.value for k, v in entries.items()}
    wait(a.create_partitions([NewPartitions("admin-t", 5)]))
    d = wait(a.describe_topics(TopicCollection(["admin-t"])))["admin-t"]
    out["partitions_after"] = len(d.partitions)
    wait(a.delete_topics(["admin-t"]))
    deadline = time.time() + 10
    while time.time() < deadline and listed(a, "admin-t"):
        time.sleep(0.1)
    out["listed_after_delete"] = listed(a, "admin-t")
    return out


def case_list_all_topics(bootstrap):
    produce(bootstrap, "listed-a", [record("none", 0)])
    produce(bootstrap, "listed-b", [record("none", 0)])
    a = admin(bootstrap)
    return {"listed": sorted(a.list_topics(timeout=TIMEOUT_S).topics.keys())}


def case_broker_configs(bootstrap):
    a = admin(bootstrap)
    # The broker's node id (--node-id, 0 by default), not looked up with Metadata so that
    # this case depends on DescribeConfigs alone.
    broker_id = "0"
    cfg = wait(a.describe_configs([ConfigResource(ResourceType.BROKER, broker_id)]))
    entries = list(cfg.values())[0]
    return {"broker_id": broker_id, "configs": {k: v.value for k, v in entries.items()}}


def case_delete_records(bootstrap):
    topic = "trimmed"
    produce(bootstrap, topic, [record("none", i) for i in range(RECORDS_PER_CODEC)])
    a = admin(bootstrap)
    deleted = wait(a.delete_records([TopicPartition(topic, 0, 4)]))
    low = list(deleted.values())[0].low_watermark
    earliest = wait(a.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}))
    first = consume(bootstrap, topic, 1)
    return {"low_watermark": low, "earliest": list(earliest.values())[0].offset, "first": first[0]["o"]}


def case_list_offsets(bootstrap):
    topic = "listed"
    produce(bootstrap, topic, [record("none", i) for i in range(RECORDS_PER_CODEC)])
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    out = {}
    specs = {
        "earliest": OffsetSpec.earliest(),
        "latest": OffsetSpec.latest(),
        "max_timestamp": OffsetSpec.max_timestamp(),
        "at_3500": OffsetSpec.for_timestamp(BASE_TIMESTAMP_MS + 3500),
        "after_last": OffsetSpec.for_timestamp(BASE_TIMESTAMP_MS + 100_000),
    }
    for name, spec in specs.items():
        r = list(wait(a.list_offsets({tp: spec})).values())[0]
        out[name] = {"offset": r.offset, "timestamp": r.timestamp}
    return out


def case_offsets_for_times(bootstrap):
    topic = "timed"
    produce(bootstrap, topic, [record("none", i) for i in range(RECORDS_PER_CODEC)])
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "confluent-times"})
    out = {}
    for name, ts in [("before_first", BASE_TIMESTAMP_MS - 1), ("at_3500", BASE_TIMESTAMP_MS + 3500),
                     ("at_9000", BASE_TIMESTAMP_MS + 9000), ("after_last", BASE_TIMESTAMP_MS + 100_000)]:
        r = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=TIMEOUT_S)[0]
        if r.error:
            raise KafkaException(r.error)
        out[name] = r.offset
    c.close()
    return out


def case_groups_admin(bootstrap):
    """A group that committed and left: listed, described, its offsets, then deleted."""
    topic, group = "grouped-admin", "confluent-admin-g"
    produce(bootstrap, topic, [record("none", i) for i in range(4)])
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.subscribe([topic])
    read = 0
    deadline = time.time() + 30
    while read < 4 and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            read += 1
    c.commit(asynchronous=False)
    c.close()
    a = admin(bootstrap)
    out = {}
    listed = a.list_consumer_groups().result(timeout=TIMEOUT_S)
    out["listed"] = sorted(g.group_id for g in listed.valid)
    d = wait(a.describe_consumer_groups([group]))[group]
    out["described"] = {"state": str(d.state).split(".")[-1], "members": len(d.members),
                        "simple": d.is_simple_consumer_group}
    offsets = wait(a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]))[group]
    out["offsets"] = {f"{tp.topic}-{tp.partition}": tp.offset for tp in offsets.topic_partitions}
    wait(a.delete_consumer_groups([group]))
    listed = a.list_consumer_groups().result(timeout=TIMEOUT_S)
    out["listed_after_delete"] = sorted(g.group_id for g in listed.valid)
    return out


def case_idempotence(bootstrap):
    topic = "idempotent"
    recs = [record("zstd", i) for i in range(RECORDS_PER_CODEC)]
    produced = produce(bootstrap, topic, recs, {"enable.idempotence": True, "compression.type": "zstd"})
    return {"produced": produced, "consumed": consume(bootstrap, topic, len(recs))}


def case_compacted_keyless(bootstrap):
    topic = "compacted"
    a = admin(bootstrap)
    wait(a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                   config={"cleanup.policy": "compact"})]))
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "message.timeout.ms": 10000})
    result = {}

    def done(err, msg):
        result["error"] = None if err is None else err.name()
        result["offset"] = msg.offset()

    p.produce(topic, value=b"no key", partition=0, on_delivery=done)
    p.flush(TIMEOUT_S)
    return {"delivery_error": result.get("error", "none reported"), "offset": result.get("offset")}


def case_authorized_operations(bootstrap):
    topic = "authorized"
    produce(bootstrap, topic, [record("none", 0)])
    a = admin(bootstrap)
    d = wait(a.describe_topics(TopicCollection([topic]), include_authorized_operations=True))[topic]
    cluster = a.describe_cluster(include_authorized_operations=True).result(timeout=TIMEOUT_S)

    def names(ops):
        return None if ops is None else sorted(str(o).split(".")[-1] for o in ops)

    return {"topic": names(d.authorized_operations), "cluster": names(cluster.authorized_operations)}


def commit_and_leave(bootstrap, group, topic, count, extra=None):
    """One member reads count records of topic, commits them and closes."""
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "fetch.wait.max.ms": 100}
    conf.update(extra or {})
    c = Consumer(conf)
    c.subscribe([topic])
    read = 0
    deadline = time.time() + 30
    while read < count and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            read += 1
    c.commit(asynchronous=False)
    c.close()
    return read


def case_deleted_topic_offsets(bootstrap):
    """A group's committed offsets of a topic that is then deleted."""
    group = "confluent-doomed-g"
    produce(bootstrap, "doomed", [record("none", i) for i in range(4)])
    produce(bootstrap, "kept", [record("none", i) for i in range(4)])
    commit_and_leave(bootstrap, group, "doomed", 4)
    commit_and_leave(bootstrap, group, "kept", 4)
    a = admin(bootstrap)
    before = wait(a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]))[group]
    wait(a.delete_topics(["doomed"]))
    time.sleep(1)
    after = wait(a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]))[group]

    def named(r):
        return {f"{tp.topic}-{tp.partition}": tp.offset for tp in r.topic_partitions}

    return {"before": named(before), "after": named(after)}


def case_static_member_expiry(bootstrap):
    """Two static members (group.instance.id); one closes, which sends no LeaveGroup, and
    the other must own both partitions once session.timeout.ms has passed."""
    topic, group, session_ms = "static", "confluent-static-g", 6000
    a = admin(bootstrap)
    wait(a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]))
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": 500, "partition.assignment.strategy": "range"}
    members = [Consumer(dict(conf, **{"group.instance.id": f"static-{i}"})) for i in range(2)]
    for m in members:
        m.subscribe([topic])
    deadline = time.time() + 30
    while time.time() < deadline and [len(m.assignment()) for m in members] != [1, 1]:
        for m in members:
            m.poll(0.1)
    before = [sorted(tp.partition for tp in m.assignment()) for m in members]
    members[0].close()
    closed_at = time.time()
    deadline = closed_at + session_ms / 1000 + 15
    while time.time() < deadline and len(members[1].assignment()) != 2:
        members[1].poll(0.1)
    took_ms = int((time.time() - closed_at) * 1000)
    after = sorted(tp.partition for tp in members[1].assignment())
    members[1].close()
    return {"before": before, "after": after, "took_ms": took_ms, "session_timeout_ms": session_ms}


if __name__ == "__main__":
    run_case(globals())
