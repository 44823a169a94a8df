// Sarama cases for interop/tests/clients_sarama.rs: Debian's Sarama 1.22.1
// (golang-github-shopify-sarama-dev) built offline in GOPATH mode with Debian's Go by
// scripts/install-test-deps.sh.
//
// Usage: sarama-cases CASE BOOTSTRAP
//
// Runs one case against the broker and prints one JSON object on the last line of stdout:
// what the client saw (offsets, records, admin results), for the Rust test to assert on,
// or {"error": "..."} when a call failed. Records follow common/client.rs `records`.
//
// The client speaks as sarama.V2_0_0_0, the version a user of Debian's Sarama sets for a
// Kafka 2.x cluster. It then sends (seen on the wire, no ApiVersions): Produce v3, Fetch
// v4, ListOffsets v1, Metadata v0 and v5, FindCoordinator v0, JoinGroup v1, SyncGroup v0,
// Heartbeat v0, LeaveGroup v0, OffsetCommit v1 (v2 with Consumer.Offsets.Retention set),
// OffsetFetch v1, ListGroups v0, DescribeGroups v0, CreateTopics v2, DeleteTopics v1,
// CreatePartitions v0, DeleteRecords v0, DescribeConfigs v0, InitProducerId v0.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const (
	recordsPerCodec = 10
	baseTimestampMs = int64(1700000000000)
	timeout         = 15 * time.Second
)

var codecs = []struct {
	name  string
	codec sarama.CompressionCodec
}{
	{"none", sarama.CompressionNone},
	{"gzip", sarama.CompressionGZIP},
	{"snappy", sarama.CompressionSnappy},
	{"lz4", sarama.CompressionLZ4},
	{"zstd", sarama.CompressionZSTD},
}

type rec struct {
	P  int32       `json:"p"`
	O  int64       `json:"o"`
	K  *string     `json:"k"`
	V  string      `json:"v"`
	H  [][2]string `json:"h"`
	Ts int64       `json:"ts"`
}

type result map[string]interface{}

func record(codec string, i int) rec {
	var key *string
	if i != 3 {
		k := fmt.Sprintf("k%d", i)
		key = &k
	}
	return rec{
		K:  key,
		V:  fmt.Sprintf("%s-%d-%s", codec, i, strings.Repeat("x", 100)),
		H:  [][2]string{{"i", fmt.Sprint(i)}, {"codec", codec}},
		Ts: baseTimestampMs + 1000*int64(i),
	}
}

func records(codec string, n int) []rec {
	out := make([]rec, n)
	for i := range out {
		out[i] = record(codec, i)
	}
	return out
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_0_0_0
	c.ClientID = "sluice-interop-sarama"
	c.Net.DialTimeout = timeout
	c.Net.ReadTimeout = timeout
	c.Net.WriteTimeout = timeout
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Admin.Timeout = timeout
	return c
}

// produce sends recs to partition 0 of topic in one SendMessages call and returns the
// acknowledged offsets in order.
func produce(bootstrap, topic string, recs []rec, tune func(*sarama.Config)) ([]int64, error) {
	c := config()
	if tune != nil {
		tune(c)
	}
	p, err := sarama.NewSyncProducer([]string{bootstrap}, c)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		m := &sarama.ProducerMessage{
			Topic:     topic,
			Partition: 0,
			Value:     sarama.StringEncoder(r.V),
			Timestamp: time.Unix(0, r.Ts*int64(time.Millisecond)),
		}
		if r.K != nil {
			m.Key = sarama.StringEncoder(*r.K)
		}
		for _, h := range r.H {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h[0]), Value: []byte(h[1])})
		}
		msgs[i] = m
	}
	if err := p.SendMessages(msgs); err != nil {
		return nil, err
	}
	offsets := make([]int64, len(msgs))
	for i, m := range msgs {
		offsets[i] = m.Offset
	}
	return offsets, nil
}

func asRec(m *sarama.ConsumerMessage) rec {
	r := rec{P: m.Partition, O: m.Offset, V: string(m.Value), Ts: m.Timestamp.UnixNano() / int64(time.Millisecond), H: [][2]string{}}
	if m.Key != nil {
		k := string(m.Key)
		r.K = &k
	}
	for _, h := range m.Headers {
		r.H = append(r.H, [2]string{string(h.Key), string(h.Value)})
	}
	return r
}

// consume reads count records of partition 0 of topic from the oldest offset.
func consume(bootstrap, topic string, count int) ([]rec, error) {
	c, err := sarama.NewConsumer([]string{bootstrap}, config())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	out := []rec{}
	deadline := time.After(timeout)
	for len(out) < count {
		select {
		case m := <-pc.Messages():
			out = append(out, asRec(m))
		case e := <-pc.Errors():
			return out, e
		case <-deadline:
			return out, fmt.Errorf("read %d of %d records of %s", len(out), count, topic)
		}
	}
	return out, nil
}

func newAdmin(bootstrap string) (sarama.ClusterAdmin, error) {
	return sarama.NewClusterAdmin([]string{bootstrap}, config())
}

func caseCodecs(bootstrap string) (result, error) {
	out := result{}
	for _, codec := range codecs {
		topic := "codec-" + codec.name
		recs := records(codec.name, recordsPerCodec)
		produced, err := produce(bootstrap, topic, recs, func(c *sarama.Config) { c.Producer.Compression = codec.codec })
		if err != nil {
			// The first message's own error names the broker's error; the aggregate only
			// counts the failures.
			if pe, ok := err.(sarama.ProducerErrors); ok && len(pe) > 0 {
				err = fmt.Errorf("%v: %v", err, pe[0].Err)
			}
			out[codec.name] = result{"error": "produce: " + err.Error()}
			continue
		}
		consumed, err := consume(bootstrap, topic, len(recs))
		if err != nil {
			out[codec.name] = result{"error": "consume: " + err.Error(), "produced": produced}
			continue
		}
		out[codec.name] = result{"produced": produced, "consumed": consumed}
	}
	return result{"codecs": out}, nil
}

// member is one consumer-group member: its claims and what it read.
type member struct {
	mu       sync.Mutex
	claims   []int32
	consumed []result
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = append([]int32(nil), s.Claims()["grouped"]...)
	sort.Slice(m.claims, func(i, j int) bool { return m.claims[i] < m.claims[j] })
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		s.MarkMessage(msg, "")
		m.mu.Lock()
		m.consumed = append(m.consumed, result{"p": msg.Partition, "o": msg.Offset, "v": string(msg.Value)})
		m.mu.Unlock()
	}
	return nil
}

func (m *member) snapshot() ([]int32, []result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32(nil), m.claims...), append([]result(nil), m.consumed...)
}

func waitFor(what string, d time.Duration, check func() bool) error {
	deadline := time.Now().Add(d)
	for !check() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// caseGroup: two members of one group share four partitions; the offset manager commits
// what each marked (every 100 ms and when the session ends).
func caseGroup(bootstrap string) (result, error) {
	return runGroup(bootstrap, 0)
}

// caseGroupRetention is caseGroup with Consumer.Offsets.Retention set, which makes
// Sarama commit with OffsetCommit v2 instead of v1.
func caseGroupRetention(bootstrap string) (result, error) {
	return runGroup(bootstrap, 24*time.Hour)
}

func runGroup(bootstrap string, retention time.Duration) (result, error) {
	const topic, group, count = "grouped", "sarama-group", 40
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		return nil, fmt.Errorf("create topic: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	members := []*member{{}, {}}
	groups := make([]sarama.ConsumerGroup, 2)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for i := range members {
		c := config()
		c.ClientID = fmt.Sprintf("m%d", i)
		c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
		c.Consumer.Offsets.Retention = retention
		c.Consumer.Group.Session.Timeout = 10 * time.Second
		c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
		c.Consumer.Group.Rebalance.Strategy = sarama.BalanceStrategyRange
		g, err := sarama.NewConsumerGroup([]string{bootstrap}, group, c)
		if err != nil {
			cancel()
			return nil, err
		}
		groups[i] = g
		wg.Add(2)
		go func(g sarama.ConsumerGroup, m *member) {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, m); err != nil {
					errs <- err
					return
				}
			}
		}(g, members[i])
		go func(g sarama.ConsumerGroup) {
			defer wg.Done()
			for e := range g.Errors() {
				select {
				case errs <- e:
				default:
				}
			}
		}(g)
	}
	stop := func() {
		cancel()
		for _, g := range groups {
			g.Close()
		}
		wg.Wait()
	}
	firstErr := func() error {
		select {
		case e := <-errs:
			return e
		default:
			return nil
		}
	}
	err = waitFor("both members claim two partitions", 30*time.Second, func() bool {
		a, _ := members[0].snapshot()
		b, _ := members[1].snapshot()
		return (len(a) == 2 && len(b) == 2) || len(errs) > 0
	})
	if e := firstErr(); e != nil || err != nil {
		stop()
		return nil, fmt.Errorf("joining: %v %v", e, err)
	}
	var recs []*sarama.ProducerMessage
	for i := 0; i < count; i++ {
		recs = append(recs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 4), Value: sarama.StringEncoder(fmt.Sprintf("g-%d", i))})
	}
	p, err := sarama.NewSyncProducer([]string{bootstrap}, config())
	if err != nil {
		stop()
		return nil, err
	}
	err = p.SendMessages(recs)
	p.Close()
	if err != nil {
		stop()
		return nil, err
	}
	err = waitFor("40 records read", 30*time.Second, func() bool {
		_, a := members[0].snapshot()
		_, b := members[1].snapshot()
		return len(a)+len(b) >= count || len(errs) > 0
	})
	// Closing the groups commits what was marked and leaves the group.
	stop()
	if e := firstErr(); e != nil || err != nil {
		return nil, fmt.Errorf("consuming: %v %v", e, err)
	}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
	if err != nil {
		return nil, fmt.Errorf("list consumer group offsets: %v", err)
	}
	committed := result{}
	for p := int32(0); p < 4; p++ {
		if b := offsets.GetBlock(topic, p); b != nil {
			if b.Err != sarama.ErrNoError {
				return nil, fmt.Errorf("offset fetch %d: %v", p, b.Err)
			}
			committed[fmt.Sprint(p)] = b.Offset
		}
	}
	var assignments [][]int32
	var consumed [][]result
	for _, m := range members {
		a, c := m.snapshot()
		assignments = append(assignments, a)
		consumed = append(consumed, c)
	}
	return result{"assignments": assignments, "consumed": consumed, "committed": committed}, nil
}

func topicNames(bootstrap string) ([]string, error) {
	c, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	names, err := c.Topics()
	sort.Strings(names)
	return names, err
}

// caseTopicsLifecycle: CreateTopic (with a config), DescribeTopics, CreatePartitions and
// DeleteTopic; no DescribeConfigs, which ListTopics and DescribeConfig send.
func caseTopicsLifecycle(bootstrap string) (result, error) {
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	retention := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}
	if err := admin.CreateTopic("admin-t", detail, false); err != nil {
		return nil, fmt.Errorf("create topic: %v", err)
	}
	out := result{}
	if out["listed"], err = topicNames(bootstrap); err != nil {
		return nil, err
	}
	described, err := admin.DescribeTopics([]string{"admin-t"})
	if err != nil || len(described) != 1 || described[0].Err != sarama.ErrNoError {
		return nil, fmt.Errorf("describe topics: %v %v", err, described)
	}
	out["described"] = result{"name": described[0].Name, "partitions": len(described[0].Partitions)}
	if err := admin.CreatePartitions("admin-t", 5, nil, false); err != nil {
		return nil, fmt.Errorf("create partitions: %v", err)
	}
	if described, err = admin.DescribeTopics([]string{"admin-t"}); err != nil {
		return nil, err
	}
	out["partitions_after"] = len(described[0].Partitions)
	if err := admin.DeleteTopic("admin-t"); err != nil {
		return nil, fmt.Errorf("delete topic: %v", err)
	}
	var names []string
	waitFor("admin-t gone", 10*time.Second, func() bool {
		names, err = topicNames(bootstrap)
		for _, n := range names {
			if n == "admin-t" {
				return false
			}
		}
		return true
	})
	out["listed_after_delete"] = names
	return out, err
}

// caseListTopics: the admin ListTopics, which Sarama 1.22 builds from Metadata and a
// DescribeConfigs (v0) of every topic.
func caseListTopics(bootstrap string) (result, error) {
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	retention := "3600000"
	detail := &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1, ConfigEntries: map[string]*string{"retention.ms": &retention}}
	if err := admin.CreateTopic("admin-t", detail, false); err != nil {
		return nil, fmt.Errorf("create topic: %v", err)
	}
	topics, err := admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %v", err)
	}
	t, ok := topics["admin-t"]
	if !ok {
		return result{"listed": false}, nil
	}
	configs := result{}
	for k, v := range t.ConfigEntries {
		if v != nil {
			configs[k] = *v
		}
	}
	return result{"listed": true, "partitions": t.NumPartitions, "configs": configs}, nil
}

func describeConfig(bootstrap string, kind sarama.ConfigResourceType, name string) (result, error) {
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: kind, Name: name})
	if err != nil {
		return nil, fmt.Errorf("describe config: %v", err)
	}
	configs := result{}
	for _, e := range entries {
		configs[e.Name] = e.Value
	}
	return configs, nil
}

func caseTopicConfigs(bootstrap string) (result, error) {
	if _, err := produce(bootstrap, "configured", records("none", 1), nil); err != nil {
		return nil, err
	}
	configs, err := describeConfig(bootstrap, sarama.TopicResource, "configured")
	return result{"topic_configs": configs}, err
}

func caseBrokerConfigs(bootstrap string) (result, error) {
	// Sarama 1.22 numbers BrokerResource 5, which Kafka refuses as an unknown resource
	// type (fixed in later Sarama releases); Kafka's BROKER is 4, Sarama's ClusterResource.
	configs, err := describeConfig(bootstrap, sarama.ClusterResource, "0")
	return result{"configs": configs}, err
}

func caseDeleteRecords(bootstrap string) (result, error) {
	const topic = "trimmed"
	if _, err := produce(bootstrap, topic, records("none", recordsPerCodec), nil); err != nil {
		return nil, err
	}
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := admin.DeleteRecords(topic, map[int32]int64{0: 4}); err != nil {
		return nil, fmt.Errorf("delete records: %v", err)
	}
	earliest, err := getOffset(bootstrap, topic, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	first, err := consume(bootstrap, topic, 1)
	if err != nil {
		return nil, err
	}
	return result{"low_watermark": earliest, "earliest": earliest, "first": first[0].O}, nil
}

func getOffset(bootstrap, topic string, at int64) (int64, error) {
	c, err := sarama.NewClient([]string{bootstrap}, config())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.GetOffset(topic, 0, at)
}

// caseListOffsets: Client.GetOffset (ListOffsets v1) for the oldest and newest offsets.
func caseListOffsets(bootstrap string) (result, error) {
	const topic = "listed"
	if _, err := produce(bootstrap, topic, records("none", recordsPerCodec), nil); err != nil {
		return nil, err
	}
	out := result{}
	for _, q := range []struct {
		name string
		at   int64
	}{{"earliest", sarama.OffsetOldest}, {"latest", sarama.OffsetNewest}} {
		o, err := getOffset(bootstrap, topic, q.at)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", q.name, err)
		}
		out[q.name] = result{"offset": o}
	}
	return out, nil
}

// caseOffsetsForTimes: Client.GetOffset with a time (ListOffsets v1 by timestamp) on
// records whose create times Sarama wrote.
func caseOffsetsForTimes(bootstrap string) (result, error) {
	const topic = "timed"
	if _, err := produce(bootstrap, topic, records("none", recordsPerCodec), nil); err != nil {
		return nil, err
	}
	out := result{}
	for _, q := range []struct {
		name string
		at   int64
	}{{"before_first", baseTimestampMs - 1}, {"at_3500", baseTimestampMs + 3500},
		{"at_9000", baseTimestampMs + 9000}, {"after_last", baseTimestampMs + 100000}} {
		o, err := getOffset(bootstrap, topic, q.at)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", q.name, err)
		}
		out[q.name] = o
	}
	return out, nil
}

// caseGroupsAdmin: a group that committed (through the offset manager) and left is listed,
// described and its offsets fetched. Sarama 1.22's admin has no DeleteGroups.
// Committed through an OffsetManager of its own: a group that never joined, as Kafka
// allows.
func caseGroupsAdmin(bootstrap string) (result, error) {
	const topic, group = "grouped-admin", "sarama-admin-g"
	if _, err := produce(bootstrap, topic, records("none", 4), nil); err != nil {
		return nil, err
	}
	// With a retention time Sarama commits with OffsetCommit v2; the default (v1) is
	// covered by caseGroup.
	c := config()
	c.Consumer.Offsets.Retention = 24 * time.Hour
	client, err := sarama.NewClient([]string{bootstrap}, c)
	if err != nil {
		return nil, err
	}
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		client.Close()
		return nil, err
	}
	pom, err := om.ManagePartition(topic, 0)
	if err != nil {
		client.Close()
		return nil, err
	}
	pom.MarkOffset(4, "")
	// Closing flushes the commit; a broker that refuses it makes Sarama retry for ever,
	// so the wait is bounded.
	closed := make(chan error, 1)
	go func() {
		var commitErr error
		done := make(chan struct{})
		go func() {
			for e := range pom.Errors() {
				commitErr = e
			}
			close(done)
		}()
		pom.AsyncClose()
		<-done
		om.Close()
		closed <- commitErr
	}()
	select {
	case err := <-closed:
		client.Close()
		if err != nil {
			return nil, fmt.Errorf("commit: %v", err)
		}
	case <-time.After(timeout):
		return nil, fmt.Errorf("commit: offset manager did not close within %v", timeout)
	}
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	out := result{}
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		return nil, fmt.Errorf("list groups: %v", err)
	}
	listed := []string{}
	for g := range groups {
		listed = append(listed, g)
	}
	sort.Strings(listed)
	out["listed"] = listed
	described, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(described) != 1 {
		return nil, fmt.Errorf("describe groups: %v %v", err, described)
	}
	out["described"] = result{"state": described[0].State, "members": len(described[0].Members)}
	offsets, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
	if err != nil {
		return nil, fmt.Errorf("list consumer group offsets: %v", err)
	}
	b := offsets.GetBlock(topic, 0)
	if b == nil {
		return nil, fmt.Errorf("no offset block for %s-0", topic)
	}
	out["offsets"] = result{topic + "-0": b.Offset}
	return out, nil
}

func caseIdempotence(bootstrap string) (result, error) {
	const topic = "idempotent"
	// lz4, not zstd: Sarama 1.22 as V2_0_0_0 sends Produce v3, below the v7 Kafka
	// requires for zstd.
	recs := records("lz4", recordsPerCodec)
	produced, err := produce(bootstrap, topic, recs, func(c *sarama.Config) {
		c.Producer.Idempotent = true
		c.Producer.Retry.Max = 3
		c.Net.MaxOpenRequests = 1
		c.Producer.Compression = sarama.CompressionLZ4
	})
	if err != nil {
		return nil, fmt.Errorf("produce: %v", err)
	}
	consumed, err := consume(bootstrap, topic, len(recs))
	return result{"produced": produced, "consumed": consumed}, err
}

func caseCompactedKeyless(bootstrap string) (result, error) {
	const topic = "compacted"
	admin, err := newAdmin(bootstrap)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	compact := "compact"
	detail := &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1, ConfigEntries: map[string]*string{"cleanup.policy": &compact}}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		return nil, fmt.Errorf("create topic: %v", err)
	}
	recs := []rec{{V: "no key", H: [][2]string{}}}
	offsets, err := produce(bootstrap, topic, recs, func(c *sarama.Config) { c.Producer.Retry.Max = 0 })
	if err != nil {
		if pe, ok := err.(sarama.ProducerErrors); ok && len(pe) > 0 {
			err = pe[0].Err
		}
		if ke, ok := err.(sarama.KError); ok {
			return result{"delivery_error": fmt.Sprintf("code %d: %v", int16(ke), ke), "code": int16(ke)}, nil
		}
		return result{"delivery_error": err.Error()}, nil
	}
	return result{"delivery_error": nil, "offset": offsets[0]}, nil
}

var cases = map[string]func(string) (result, error){
	"codecs":            caseCodecs,
	"group":             caseGroup,
	"group_retention":   caseGroupRetention,
	"topics_lifecycle":  caseTopicsLifecycle,
	"list_topics":       caseListTopics,
	"topic_configs":     caseTopicConfigs,
	"broker_configs":    caseBrokerConfigs,
	"delete_records":    caseDeleteRecords,
	"list_offsets":      caseListOffsets,
	"offsets_for_times": caseOffsetsForTimes,
	"groups_admin":      caseGroupsAdmin,
	"idempotence":       caseIdempotence,
	"compacted_keyless": caseCompactedKeyless,
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: sarama-cases CASE BOOTSTRAP")
		os.Exit(2)
	}
	run, ok := cases[os.Args[1]]
	var out result
	var err error
	if !ok {
		err = fmt.Errorf("unknown case %q", os.Args[1])
	} else {
		out, err = run(os.Args[2])
	}
	if err != nil {
		out = result{"error": err.Error()}
	}
	line, jerr := json.Marshal(out)
	if jerr != nil {
		line, _ = json.Marshal(result{"error": jerr.Error()})
	}
	fmt.Println(string(line))
}
