package consume

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/causeway/causeway/span"
)

func TestSamplerLogsOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	s := newSampler(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second, func() time.Time { return now })
	msg := bytes.Repeat([]byte{0xab}, 100)
	for i := 0; i < 5; i++ {
		s.report(span.ReasonTruncated, msg, 2, "offset", i)
	}
	s.report(span.ReasonBadJSON, msg, 1) // another reason has its own budget
	now = now.Add(11 * time.Second)
	s.report(span.ReasonTruncated, msg, 1, "offset", 99)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[2], "suppressed_since_last_log=8") || !strings.Contains(lines[2], "offset=99") {
		t.Errorf("third line %q: want 8 suppressed and the new context", lines[2])
	}
	if !strings.Contains(lines[0], "sample_hex="+strings.Repeat("ab", sampleBytes)+" ") || !strings.Contains(lines[0], "size=100") {
		t.Errorf("first line %q: want a 64-byte sample and the size", lines[0])
	}
}
