// KafkaJS cases for interop/tests/clients_kafkajs.rs.
//
// Usage: node cases.js CASE BOOTSTRAP
//
// Runs one case against the broker and prints one JSON object on the last line of stdout:
// what the client saw (offsets, records, admin results), for the Rust test to assert on,
// or {"error": "..."} when a call failed. Records follow common/client.rs `records`.
//
// KafkaJS ships gzip only; snappy comes from kafkajs-snappy, and lz4 (lz4js, LZ4 frames)
// and zstd (@bokuweb/zstd-wasm) through the small codecs below, all pure JavaScript or
// WebAssembly.
'use strict'

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const {
  Kafka,
  CompressionTypes,
  CompressionCodecs,
  ConfigResourceTypes,
  logLevel,
} = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4js = require('lz4js')
const zstd = require('@bokuweb/zstd-wasm')

const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']
const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}
const RECORDS_PER_CODEC = 10
const BASE_TIMESTAMP_MS = 1700000000000
const TIMEOUT_MS = 15000

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) {
    return Buffer.from(lz4js.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4js.decompress(buffer))
  },
})
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) {
    await zstd.init()
    return Buffer.from(zstd.compress(encoder.buffer, 3))
  },
  async decompress(buffer) {
    await zstd.init()
    return Buffer.from(zstd.decompress(buffer))
  },
})

function record(codec, i) {
  return {
    k: i === 3 ? null : `k${i}`,
    v: `${codec}-${i}-` + 'x'.repeat(100),
    h: [['i', String(i)], ['codec', codec]],
    ts: BASE_TIMESTAMP_MS + 1000 * i,
  }
}

function client(bootstrap) {
  return new Kafka({
    clientId: 'sluice-interop-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 3, initialRetryTime: 100 },
    requestTimeout: TIMEOUT_MS,
  })
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function until(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(20)
  }
}

// Produces recs to partition 0 of topic in one send (one batch); returns their offsets.
async function produce(kafka, topic, recs, compression = CompressionTypes.None, options = {}) {
  const producer = kafka.producer({ allowAutoTopicCreation: true, ...options })
  await producer.connect()
  try {
    const [result] = await producer.send({
      topic,
      acks: -1,
      compression,
      messages: recs.map((r) => ({
        key: r.k,
        value: r.v,
        headers: Object.fromEntries(r.h),
        timestamp: String(r.ts),
        partition: 0,
      })),
    })
    if (result.errorCode !== 0) throw new Error(`produce error ${result.errorCode}`)
    const base = Number(result.baseOffset)
    return recs.map((_, i) => base + i)
  } finally {
    await producer.disconnect()
  }
}

function asJson(partition, m) {
  return {
    p: partition,
    o: Number(m.offset),
    k: m.key === null ? null : m.key.toString(),
    v: m.value.toString(),
    h: Object.entries(m.headers || {}).map(([k, v]) => [k, v.toString()]),
    ts: Number(m.timestamp),
  }
}

// Reads count records of topic from the beginning, as a member of a group of its own
// (KafkaJS has no manual assignment).
async function consume(kafka, topic, count) {
  const consumer = kafka.consumer({
    groupId: `kafkajs-reader-${topic}-${Date.now()}`,
    maxWaitTimeInMs: 100,
  })
  await consumer.connect()
  const out = []
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        out.push(asJson(partition, message))
      },
    })
    await until(`${count} records of ${topic}`, () => out.length >= count, TIMEOUT_MS)
  } finally {
    await consumer.disconnect()
  }
  return out
}

const cases = {}

cases.codecs = async (kafka) => {
  const out = {}
  for (const codec of CODECS) {
    const topic = `codec-${codec}`
    try {
      const recs = [...Array(RECORDS_PER_CODEC).keys()].map((i) => record(codec, i))
      const produced = await produce(kafka, topic, recs, COMPRESSION[codec])
      out[codec] = { produced, consumed: await consume(kafka, topic, recs.length) }
    } catch (e) {
      out[codec] = { error: String(e && e.stack) }
    }
  }
  return { codecs: out }
}

// Two members of one group share four partitions and commit each record they read.
cases.group = async (kafka) => {
  const topic = 'grouped'
  const groupId = 'kafkajs-group'
  const count = 40
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1 }], waitForLeaders: true })
  const assignments = [[], []]
  const consumed = [[], []]
  const members = [0, 1].map(() => kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 100,
  }))
  for (const [i, m] of members.entries()) {
    m.on(m.events.GROUP_JOIN, (e) => {
      assignments[i] = (e.payload.memberAssignment[topic] || []).slice().sort()
    })
    await m.connect()
    await m.subscribe({ topic, fromBeginning: true })
    await m.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        await m.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        consumed[i].push({ p: partition, o: Number(message.offset), v: message.value.toString() })
      },
    })
  }
  await until('both members own two partitions', () => assignments.every((a) => a.length === 2))
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({
    topic,
    acks: -1,
    messages: [...Array(count).keys()].map((i) => ({ value: `g-${i}`, partition: i % 4 })),
  })
  await producer.disconnect()
  await until(`${count} records read`, () => consumed[0].length + consumed[1].length >= count)
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
  const committed = Object.fromEntries(offsets.partitions.map((p) => [String(p.partition), Number(p.offset)]))
  for (const m of members) await m.disconnect()
  await admin.disconnect()
  return { assignments, consumed, committed }
}

async function describeConfigs(admin, type, name) {
  const r = await admin.describeConfigs({ resources: [{ type, name }], includeSynonyms: false })
  const [resource] = r.resources
  if (resource.errorCode !== 0) throw new Error(`describeConfigs error ${resource.errorCode}`)
  return Object.fromEntries(resource.configEntries.map((e) => [e.configName, e.configValue]))
}

cases.admin_topics = async (kafka) => {
  const admin = kafka.admin()
  await admin.connect()
  const out = {}
  await admin.createTopics({
    topics: [{ topic: 'admin-t', numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true,
  })
  out.listed = (await admin.listTopics()).sort()
  const [d] = (await admin.fetchTopicMetadata({ topics: ['admin-t'] })).topics
  out.described = { name: d.name, partitions: d.partitions.length }
  out.topic_configs = await describeConfigs(admin, ConfigResourceTypes.TOPIC, 'admin-t')
  await admin.createPartitions({ topicPartitions: [{ topic: 'admin-t', count: 5 }] })
  out.partitions_after = (await admin.fetchTopicMetadata({ topics: ['admin-t'] })).topics[0].partitions.length
  await admin.deleteTopics({ topics: ['admin-t'] })
  let listed = []
  const deadline = Date.now() + 10000
  do {
    listed = await admin.listTopics()
    if (!listed.includes('admin-t')) break
    await sleep(100)
  } while (Date.now() < deadline)
  out.listed_after_delete = listed.sort()
  await admin.disconnect()
  return out
}

cases.broker_configs = async (kafka) => {
  const admin = kafka.admin()
  await admin.connect()
  const configs = await describeConfigs(admin, ConfigResourceTypes.BROKER, '0')
  await admin.disconnect()
  return { configs }
}

const tenRecords = (codec) => [...Array(RECORDS_PER_CODEC).keys()].map((i) => record(codec, i))

cases.delete_records = async (kafka) => {
  const topic = 'trimmed'
  await produce(kafka, topic, tenRecords('none'))
  const admin = kafka.admin()
  await admin.connect()
  // deleteTopicRecords looks the leader up in metadata the admin client already holds
  // (KafkaJSTopicMetadataNotLoaded otherwise): load it first.
  await admin.fetchTopicMetadata({ topics: [topic] })
  await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] })
  const [p] = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const [first] = await consume(kafka, topic, 1)
  return { low_watermark: Number(p.low), earliest: Number(p.low), first: first.o }
}

cases.list_offsets = async (kafka) => {
  const topic = 'listed'
  await produce(kafka, topic, tenRecords('none'))
  const admin = kafka.admin()
  await admin.connect()
  const [p] = await admin.fetchTopicOffsets(topic)
  const [at] = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TIMESTAMP_MS + 3500)
  await admin.disconnect()
  return {
    earliest: { offset: Number(p.low) },
    latest: { offset: Number(p.high) },
    at_3500: { offset: Number(at.offset) },
  }
}

// fetchTopicOffsetsByTimestamp is KafkaJS's ListOffsets by timestamp; past the last
// record it reports the high watermark where Kafka says -1.
cases.offsets_for_times = async (kafka) => {
  const topic = 'timed'
  await produce(kafka, topic, tenRecords('none'))
  const admin = kafka.admin()
  await admin.connect()
  const out = {}
  for (const [name, ts] of [['before_first', BASE_TIMESTAMP_MS - 1], ['at_3500', BASE_TIMESTAMP_MS + 3500],
    ['at_9000', BASE_TIMESTAMP_MS + 9000], ['after_last', BASE_TIMESTAMP_MS + 100000]]) {
    const [p] = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
    out[name] = Number(p.offset)
  }
  await admin.disconnect()
  return out
}

// A group that committed and left: listed, described, its offsets, then deleted.
cases.groups_admin = async (kafka) => {
  const topic = 'grouped-admin'
  const groupId = 'kafkajs-admin-g'
  await produce(kafka, topic, [0, 1, 2, 3].map((i) => record('none', i)))
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  let read = 0
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
      read += 1
    },
  })
  await until('4 records read', () => read >= 4)
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const out = {}
  out.listed = (await admin.listGroups()).groups.map((g) => g.groupId).sort()
  const [d] = (await admin.describeGroups([groupId])).groups
  out.described = { state: d.state, members: d.members.length }
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] })
  out.offsets = Object.fromEntries(offsets.partitions.map((p) => [`${topic}-${p.partition}`, Number(p.offset)]))
  await admin.deleteGroups([groupId])
  out.listed_after_delete = (await admin.listGroups()).groups.map((g) => g.groupId).sort()
  await admin.disconnect()
  return out
}

cases.idempotence = async (kafka) => {
  const topic = 'idempotent'
  const recs = tenRecords('zstd')
  const produced = await produce(kafka, topic, recs, CompressionTypes.ZSTD, { idempotent: true, maxInFlightRequests: 1 })
  return { produced, consumed: await consume(kafka, topic, recs.length) }
}

cases.compacted_keyless = async (kafka) => {
  const topic = 'compacted'
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    waitForLeaders: true,
  })
  await admin.disconnect()
  const producer = kafka.producer({ retry: { retries: 0 } })
  await producer.connect()
  try {
    const [r] = await producer.send({ topic, acks: -1, messages: [{ value: 'no key', partition: 0 }] })
    return { delivery_error: null, offset: Number(r.baseOffset) }
  } catch (e) {
    // The protocol error's type (INVALID_RECORD, ...) may sit under a retry wrapper.
    let cause = e
    while (cause && !cause.type && cause.cause) cause = cause.cause
    return { delivery_error: (cause && cause.type) || e.name, detail: String(e) }
  } finally {
    await producer.disconnect()
  }
}

async function main() {
  const [caseName, bootstrap] = process.argv.slice(2)
  let out
  try {
    out = await cases[caseName](client(bootstrap))
  } catch (e) {
    console.error(e)
    out = { error: String(e && e.stack) }
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

main()
