package fleet

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/causeway/causeway/graph/baselines"
)

// Config turns on cluster mode and names its topics. The zero value is off.
type Config struct {
	// Enabled runs this detector as one member of a fleet sharing the
	// consumer group of kafka.group_id.
	Enabled bool `yaml:"enabled"`
	// WindowsTopic carries every member's per-partition window summaries,
	// each partition a shard of the series (or, with Merge "every_member",
	// read whole by every member). Default causeway_windows. Created if
	// missing, with WindowsPartitions partitions (default: as many as the
	// span topic).
	WindowsTopic      string `yaml:"windows_topic"`
	WindowsPartitions int    `yaml:"windows_partitions"`
	// WindowsRetention is the retention the windows and leader topics are
	// created with: what a new member replays to rebuild the baselines.
	// Default baselines.Horizon (6h), what they remember; a member that
	// finds the windows topic keeping less warns at start.
	WindowsRetention time.Duration `yaml:"windows_retention"`
	// LeaderTopic has one partition: the member the group assigns it to
	// sends the alerts, and records there what it delivered so the next
	// leader does not send it again. Default causeway_leader.
	LeaderTopic string `yaml:"leader_topic"`
	// RekeyTopic receives spans re-keyed by trace id when the span topic's
	// messages are not (kafka.trace_keyed: false). Default
	// causeway_spans_by_trace, created with the span topic's partitions.
	RekeyTopic string `yaml:"rekey_topic"`
	// MaxWindowWait is how long (wall clock) windows wait for a partition
	// nothing is heard from before they are closed without it; what it
	// publishes later for them is dropped (counted). It must cover a
	// member's failure: session timeout plus the new owner's catching up.
	// A partition that is merely behind, but publishing, is always waited
	// for. Default 2m.
	MaxWindowWait time.Duration `yaml:"max_window_wait"`
	// SessionTimeout is how long the group waits for a silent member
	// before handing its partitions on. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Member names this detector in logs and summaries. Default
	// hostname-pid.
	Member string `yaml:"member"`
	// MaxMessageBytes bounds one summary message; larger windows are sent
	// in parts. Default 512 KiB (brokers accept 1 MiB by default).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Merge is how the partitions' windows become the fleet's:
	// "sharded" (the default) merges each series once, by the member that
	// owns its shard (a partition of the windows topic), which publishes
	// the merged shard to MergedTopic for every member to read;
	// "every_member" has every member merge every partition's windows
	// itself, as versions before sharding did.
	Merge string `yaml:"merge"`
	// MergedTopic carries the merged shards (Merge "sharded"): every member
	// reads all of it, and a new member replays it at start. Default
	// causeway_merged, created with as many partitions as the windows
	// topic and WindowsRetention.
	MergedTopic string `yaml:"merged_topic"`
}

// The values of Config.Merge.
const (
	MergeSharded     = "sharded"
	MergeEveryMember = "every_member"
)

// Sharded reports whether each series is merged once, by its shard's owner.
func (c Config) Sharded() bool { return c.Merge != MergeEveryMember }

// ReplayedTopic is the topic every member reads whole, and a new member
// replays at start: the merged topic, or the windows topic without a
// sharded merge.
func (c Config) ReplayedTopic() string {
	if c.Sharded() {
		return c.MergedTopic
	}
	return c.WindowsTopic
}

// WithDefaults fills in what is unset.
func (c Config) WithDefaults() Config {
	if c.WindowsTopic == "" {
		c.WindowsTopic = "causeway_windows"
	}
	if c.LeaderTopic == "" {
		c.LeaderTopic = "causeway_leader"
	}
	if c.RekeyTopic == "" {
		c.RekeyTopic = "causeway_spans_by_trace"
	}
	if c.WindowsRetention == 0 {
		c.WindowsRetention = baselines.Horizon
	}
	if c.MaxWindowWait == 0 {
		c.MaxWindowWait = 2 * time.Minute
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.Member == "" {
		host, _ := os.Hostname()
		c.Member = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 512 << 10
	}
	if c.Merge == "" {
		c.Merge = MergeSharded
	}
	if c.MergedTopic == "" {
		c.MergedTopic = "causeway_merged"
	}
	return c
}

// Validate reports the first setting that cannot work, naming its field.
func (c Config) Validate() error {
	switch {
	case c.MaxWindowWait < 0:
		return fmt.Errorf("cluster.max_window_wait: %v must not be negative", c.MaxWindowWait)
	case c.SessionTimeout < 0 || (c.SessionTimeout > 0 && c.SessionTimeout < time.Second):
		return fmt.Errorf("cluster.session_timeout: %v must be at least 1s", c.SessionTimeout)
	case c.WindowsRetention < 0:
		return fmt.Errorf("cluster.windows_retention: %v must not be negative", c.WindowsRetention)
	case c.WindowsPartitions < 0:
		return errors.New("cluster.windows_partitions: must not be negative")
	case c.MaxMessageBytes < 0 || (c.MaxMessageBytes > 0 && c.MaxMessageBytes < 4096):
		return fmt.Errorf("cluster.max_message_bytes: %d must be at least 4096", c.MaxMessageBytes)
	case c.Enabled && c.WindowsTopic != "" && c.WindowsTopic == c.LeaderTopic:
		return errors.New("cluster.leader_topic: must differ from windows_topic")
	case c.Merge != "" && c.Merge != MergeSharded && c.Merge != MergeEveryMember:
		return fmt.Errorf("cluster.merge: %q is neither %q nor %q", c.Merge, MergeSharded, MergeEveryMember)
	case c.Enabled && c.MergedTopic != "" && (c.MergedTopic == c.WindowsTopic || c.MergedTopic == c.LeaderTopic):
		return errors.New("cluster.merged_topic: must differ from windows_topic and leader_topic")
	}
	return nil
}
