package fleet

import (
	"bytes"
	"math/rand/v2"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/causeway/causeway/consume/otlp/otlptest"
)

// TestSplitterMatchesGenerated cross-checks the splitter against the
// split through the generated OTLP types: on realistic requests, and on
// them with bytes flipped or cut, into 1, 3 and 8 re-key partitions, the
// same partitions with the same spans, resources and scopes, and the same
// latest span end. The splitter copies resources, scopes and span contents
// without looking inside, so it may accept a message the generated split
// rejects for a problem in there (the partition worker reports it then),
// never the other way round.
func TestSplitterMatchesGenerated(t *testing.T) {
	var s splitter // reused, as the re-key stage does
	r := rand.New(rand.NewPCG(3, 4))
	checked, lenient := 0, 0
	for seed := range int64(20) {
		msg, err := proto.Marshal(otlptest.RealisticRequest(50+int(seed)*40, seed))
		if err != nil {
			t.Fatal(err)
		}
		inputs := [][]byte{msg}
		for range 30 {
			m := append([]byte(nil), msg...)
			switch r.IntN(3) {
			case 0:
				m[r.IntN(len(m))] ^= byte(1 + r.IntN(255))
			case 1:
				m = m[:r.IntN(len(m))]
			case 2:
				i := r.IntN(len(m))
				m = append(m[:i:i], m[min(len(m), i+1+r.IntN(8)):]...)
			}
			inputs = append(inputs, m)
		}
		parts := []int{1, 3, 8}[seed%3]
		for _, in := range inputs {
			want, wantEnd, werr := splitPartsGenerated(in, parts)
			got := make([][]byte, parts)
			spans, gotEnd, gerr := s.splitParts(in, parts, got)
			switch {
			case gerr != nil && werr == nil:
				t.Fatalf("seed %d: the splitter rejects what the generated split reads: %v", seed, gerr)
			case gerr != nil:
				continue
			case werr != nil:
				lenient++
				continue
			}
			checked++
			if gotEnd != wantEnd {
				t.Errorf("seed %d: latest span end %d, want %d", seed, gotEnd, wantEnd)
			}
			total := 0
			for p, w := range want {
				if (got[p] == nil) != (w == nil) {
					t.Fatalf("seed %d: partition %d: %d bytes, want %d", seed, p, len(got[p]), len(w))
				}
				var a, b coltracepb.ExportTraceServiceRequest
				if err := proto.Unmarshal(got[p], &a); err != nil {
					t.Fatalf("seed %d: partition %d: the splitter's request does not decode: %v", seed, p, err)
				}
				if err := proto.Unmarshal(w, &b); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(&a, &b) {
					t.Fatalf("seed %d: partition %d:\n got %v\nwant %v", seed, p, &a, &b)
				}
				for _, rs := range b.ResourceSpans {
					for _, ss := range rs.ScopeSpans {
						total += len(ss.Spans)
					}
				}
			}
			if spans != total {
				t.Errorf("seed %d: the splitter counts %d spans, the requests hold %d", seed, spans, total)
			}
		}
	}
	t.Logf("%d inputs compared, %d accepted by the splitter alone (problems inside copied parts)", checked, lenient)
	if checked < 20 {
		t.Errorf("only %d inputs compared", checked)
	}
}

// BenchmarkSplitByTrace is the re-key stage's cost per span: the splitter
// into four re-key partitions against the generated types' decode and
// encode.
func BenchmarkSplitByTrace(b *testing.B) {
	req := otlptest.RealisticRequest(500, 1)
	msg, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	spans := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			spans += len(ss.Spans)
		}
	}
	run := func(b *testing.B, split func([]byte) error) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if err := split(msg); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(spans), "ns/span")
	}
	b.Run("splitter", func(b *testing.B) {
		var s splitter
		dst := make([][]byte, 4)
		run(b, func(m []byte) error {
			for p := range dst {
				dst[p] = dst[p][:0]
			}
			_, _, err := s.splitParts(m, len(dst), dst)
			return err
		})
	})
	b.Run("generated", func(b *testing.B) {
		run(b, func(m []byte) error { _, _, err := splitPartsGenerated(m, 4); return err })
	})
}

// checkField fails t when field and protowire read b differently.
func checkField(t *testing.T, b []byte) {
	num, typ, v, n := field(b)
	wnum, wtyp, wv, wn := protowireField(b)
	if num != wnum || typ != wtyp || !bytes.Equal(v, wv) || n != wn || (v == nil) != (wv == nil) {
		t.Fatalf("field(%x) = %d, %d, %x, %d; protowire reads %d, %d, %x, %d", b, num, typ, v, n, wnum, wtyp, wv, wn)
	}
}

// TestFieldMatchesProtowire: the splitter's field reader and protowire
// agree on every two-byte start of a field, each followed by nothing, a
// few bytes or many, and on fields protowire wrote.
func TestFieldMatchesProtowire(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for first := range 256 {
		for second := range 256 {
			for _, tail := range []int{0, 1, 3, 7, 8, 9, 40, 127, 200} {
				b := make([]byte, 2+tail)
				b[0], b[1] = byte(first), byte(second)
				for i := 2; i < len(b); i++ {
					b[i] = byte(r.IntN(256))
				}
				for cut := range min(len(b), 12) + 1 { // and every short prefix
					checkField(t, b[:cut])
				}
				checkField(t, b)
			}
		}
	}
	var b []byte
	for _, num := range []protowire.Number{1, 8, 15, 16, 2047, 1 << 20} {
		b = protowire.AppendTag(b[:0], num, protowire.BytesType)
		checkField(t, protowire.AppendBytes(b, make([]byte, 300)))
		b = protowire.AppendTag(b[:0], num, protowire.VarintType)
		checkField(t, protowire.AppendVarint(b, 1<<40))
		b = protowire.AppendTag(b[:0], num, protowire.Fixed64Type)
		checkField(t, protowire.AppendFixed64(b, 1<<63))
	}
}

// FuzzField: the splitter's field reader and protowire agree on any input.
func FuzzField(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 0x01, 0x02})
	f.Add([]byte{0x41, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0x08, 0x96, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkField(t, b)
		// And the whole input walked field by field, as the splitter does.
		for len(b) > 0 {
			_, _, _, n := field(b)
			if n <= 0 {
				break
			}
			checkField(t, b)
			b = b[n:]
		}
	})
}
