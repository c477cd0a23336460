// franzgo: the Go client family in the suite (franz-go and its admin package kadm, at their defaults), run by
// tests/e2e/test_clients.py inside the lab's client namespace against a gateway node, and by
// tests/e2e/test_cluster_gateway.py against a three-node gateway cluster (then it reaches every node).
//
//	franzgo -bootstrap HOST:PORT[,HOST:PORT...] -topic TOPIC -group GROUP -count N
//
// It creates and describes TOPIC, describes the cluster, produces N records, consumes them in GROUP (committing),
// describes the group, lists the end and committed offsets, alters the group's offsets back to 0 and reads them again.
// One JSON line on stdout says what it counted; an error exits 1 with the error on stderr. Bounded by -timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type result struct {
	Brokers          []string `json:"brokers"`           // host:port of every broker the cluster description lists
	Partitions       int      `json:"partitions"`        // of TOPIC, as described
	Acked            int      `json:"acked"`             // records the producer had acknowledged
	Consumed         int      `json:"consumed"`          // records the group member received
	Distinct         int      `json:"distinct"`          // distinct values among them
	GroupState       string   `json:"group_state"`       // as described while the member was in the group
	GroupMembers     int      `json:"group_members"`     // likewise
	EndOffsets       int64    `json:"end_offsets"`       // sum over TOPIC's partitions
	CommittedOffsets int64    `json:"committed_offsets"` // sum of GROUP's committed offsets after consuming
	AlteredOffsets   int64    `json:"altered_offsets"`   // sum of GROUP's offsets after they were altered to 0
	AlteredCount     int      `json:"altered_count"`     // partitions whose offset was altered
}

func main() {
	bootstrap := flag.String("bootstrap", "", "gateway bootstrap HOST:PORT")
	topic := flag.String("topic", "", "topic to create, produce to and consume")
	group := flag.String("group", "", "consumer group")
	count := flag.Int("count", 500, "records to produce and consume")
	timeout := flag.Duration("timeout", 90*time.Second, "bound on the whole run")
	flag.Parse()
	if *bootstrap == "" || *topic == "" || *group == "" || *count < 1 {
		fmt.Fprintln(os.Stderr, "usage: franzgo -bootstrap HOST:PORT -topic TOPIC -group GROUP [-count N]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	out, err := run(ctx, *bootstrap, *topic, *group, *count)
	if err != nil {
		fmt.Fprintln(os.Stderr, "franzgo:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context, bootstrap, topic, group string, count int) (*result, error) {
	out := &result{}
	client, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	admin := kadm.NewClient(client)

	if _, err := admin.CreateTopic(ctx, 3, 3, nil, topic); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	if err := describeTopic(ctx, admin, topic, out); err != nil {
		return nil, err
	}
	cluster, err := admin.BrokerMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe cluster: %w", err)
	}
	for _, broker := range cluster.Brokers {
		out.Brokers = append(out.Brokers, broker.Host+":"+strconv.Itoa(int(broker.Port)))
	}
	sort.Strings(out.Brokers)

	if err := produce(ctx, client, topic, count, out); err != nil {
		return nil, err
	}
	if err := consume(ctx, admin, bootstrap, topic, group, count, out); err != nil {
		return nil, err
	}
	return out, alterOffsets(ctx, admin, topic, group, out)
}

// describeTopic waits (bounded by ctx) until the new topic has a leader for each partition.
func describeTopic(ctx context.Context, admin *kadm.Client, topic string, out *result) error {
	for {
		topics, err := admin.ListTopics(ctx, topic)
		if err == nil {
			detail := topics[topic]
			led := 0
			for _, partition := range detail.Partitions {
				if partition.Err == nil && partition.Leader >= 0 {
					led++
				}
			}
			if detail.Err == nil && led == 3 && len(detail.Partitions) == 3 {
				out.Partitions = len(detail.Partitions)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("describe topic %s: no leaders before the deadline (last error %v)", topic, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func produce(ctx context.Context, client *kgo.Client, topic string, count int, out *result) error {
	records := make([]*kgo.Record, count)
	for i := range records {
		// Keyed, so the default partitioner spreads them over every partition (and so every broker's port); unkeyed,
		// it sticks to one partition per batch.
		records[i] = &kgo.Record{Topic: topic, Key: []byte("key-" + strconv.Itoa(i)), Value: []byte("go-" + strconv.Itoa(i))}
	}
	results := client.ProduceSync(ctx, records...)
	for _, produced := range results {
		if produced.Err == nil {
			out.Acked++
		}
	}
	return results.FirstErr()
}

// consume joins the group with a client of its own, reads until every record came, commits, and describes the group
// while its member is still in it.
func consume(ctx context.Context, admin *kadm.Client, bootstrap, topic, group string, count int, out *result) error {
	member, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return err
	}
	defer member.Close()
	seen := map[string]bool{}
	for out.Consumed < count {
		fetches := member.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("consume: %d of %d records before the deadline", out.Consumed, count)
		}
		var failed error
		fetches.EachError(func(_ string, _ int32, err error) { failed = err })
		if failed != nil {
			return fmt.Errorf("consume: %w", failed)
		}
		fetches.EachRecord(func(record *kgo.Record) {
			out.Consumed++
			seen[string(record.Value)] = true
		})
		if err := member.CommitUncommittedOffsets(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	out.Distinct = len(seen)
	described, err := admin.DescribeGroups(ctx, group)
	if err := failed("describe group", err, described); err != nil {
		return err
	}
	out.GroupState = described[group].State
	out.GroupMembers = len(described[group].Members)
	return nil
}

// alterOffsets runs once the member has left (an active group refuses offset changes from outside it).
func alterOffsets(ctx context.Context, admin *kadm.Client, topic, group string, out *result) error {
	ends, err := admin.ListEndOffsets(ctx, topic)
	if err := failed("list end offsets", err, ends); err != nil {
		return err
	}
	ends.Each(func(o kadm.ListedOffset) { out.EndOffsets += o.Offset })

	committed, err := admin.FetchOffsets(ctx, group)
	if err := failed("list committed offsets", err, committed); err != nil {
		return err
	}
	committed.Each(func(o kadm.OffsetResponse) { out.CommittedOffsets += o.At })

	rewind := kadm.Offsets{}
	committed.Each(func(o kadm.OffsetResponse) { rewind.AddOffset(o.Topic, o.Partition, 0, -1) })
	altered, err := admin.CommitOffsets(ctx, group, rewind)
	if err := failed("alter offsets", err, altered); err != nil {
		return err
	}
	out.AlteredCount = len(altered.Sorted())
	again, err := admin.FetchOffsets(ctx, group)
	if err := failed("list altered offsets", err, again); err != nil {
		return err
	}
	again.Each(func(o kadm.OffsetResponse) { out.AlteredOffsets += o.At })
	return nil
}

// failed is a kadm call's error: the request's own, else the first one its answer holds for a partition or group.
func failed(what string, err error, answer interface{ Error() error }) error {
	if err == nil {
		err = answer.Error()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
