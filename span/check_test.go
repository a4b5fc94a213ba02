package span

import (
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	good := Span{TraceID: TraceID{1}, SpanID: ID{1}, Service: "cart", Name: "GET /cart", Start: t0, End: t0 + 1e6}
	long := strings.Repeat("x", 513)
	for _, tc := range []struct {
		name string
		edit func(*Span)
		want Reason
	}{
		{"good", func(*Span) {}, ""},
		{"no service", func(s *Span) { s.Service = "" }, ReasonNoService},
		{"zero trace id", func(s *Span) { s.TraceID = TraceID{} }, ReasonBadID},
		{"reversed times", func(s *Span) { s.End = s.Start - 1 }, ReasonBadTimestamp},
		{"zero start", func(s *Span) { s.Start = 0 }, ReasonBadTimestamp},
		{"two hours long", func(s *Span) { s.End = s.Start + int64(2*time.Hour) }, ReasonTooLong},
		{"long service name", func(s *Span) { s.Service = long }, ReasonLongName},
		{"long operation", func(s *Span) { s.Name = long }, ReasonLongName},
		{"long peer address", func(s *Span) { s.ServerAddress = long }, ReasonLongName},
		{"long queue name", func(s *Span) { s.MessagingDest = long }, ReasonLongName},
		{"name at the limit", func(s *Span) { s.Name = long[:512] }, ""},
	} {
		s := good
		tc.edit(&s)
		if got := (Limits{}).Check(&s); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	s := good
	s.Name = strings.Repeat("y", 40)
	if got := (Limits{MaxNameBytes: 32}).Check(&s); got != ReasonLongName {
		t.Errorf("a 40-byte name under a 32-byte limit: %q", got)
	}
}
