package graph

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/causeway/causeway/span"
)

// The pending traces of a checkpoint, written after the gob-encoded
// aggregatorState in a binary form of their own. Under load they are most
// of the state (millions of spans), and gob encoded each span's strings
// in full and held the whole message twice while encoding: a checkpoint
// at 200k spans/s doubled the live heap. Here each distinct string is
// written once and then referred to by number, times are varints relative
// to the trace, and the traces are written as they are walked.
//
//	uvarint  number of traces
//	per trace:
//	  16 bytes trace id, varint queue time, varint last end,
//	  uvarint peers, uvarint spans
//	  per peer: string name, string kind, string system
//	  per span: 8 bytes span id, 8 bytes parent id, string service,
//	    string name, varint start - last end, uvarint end - start,
//	    uvarint peer, byte kind, byte failed
//	string: uvarint 0, uvarint length, bytes (a new string, numbered
//	    from 1 in order of appearance); or uvarint n, string number n
//
// maxPendingStrings and maxPendingStringLen bound what a damaged file can
// make the reader allocate before it fails.
const (
	maxPendingStrings   = 1 << 24
	maxPendingStringLen = 1 << 16
)

type pendingWriter struct {
	w       *bufio.Writer
	strings map[string]uint64
	buf     [binary.MaxVarintLen64]byte
}

func (pw *pendingWriter) uvarint(v uint64) {
	pw.w.Write(binary.AppendUvarint(pw.buf[:0], v))
}

func (pw *pendingWriter) varint(v int64) {
	pw.w.Write(binary.AppendVarint(pw.buf[:0], v))
}

func (pw *pendingWriter) string(s string) {
	if n, ok := pw.strings[s]; ok {
		pw.uvarint(n)
		return
	}
	pw.strings[s] = uint64(len(pw.strings) + 1)
	pw.uvarint(0)
	pw.uvarint(uint64(len(s)))
	pw.w.WriteString(s)
}

// writePending writes the traces of each part's expiry queue, part after
// part, in queue order.
func writePending(w io.Writer, parts []*Aggregator) error {
	pw := &pendingWriter{w: bufio.NewWriterSize(w, 64<<10), strings: make(map[string]uint64)}
	n := 0
	for _, p := range parts {
		n += len(p.pend.queue)
	}
	pw.uvarint(uint64(n))
	for _, p := range parts {
		for _, it := range p.pend.queue {
			t := it.t
			pw.w.Write(t.id[:])
			pw.varint(it.at)
			pw.varint(t.lastEnd)
			pw.uvarint(uint64(len(t.peers)))
			pw.uvarint(uint64(len(t.spans)))
			for _, n := range t.peers {
				pw.string(n.Name)
				pw.string(string(n.Kind))
				pw.string(n.System)
			}
			for i := range t.spans {
				s := &t.spans[i]
				pw.w.Write(s.SpanID[:])
				pw.w.Write(s.ParentID[:])
				pw.string(s.Service)
				pw.string(s.Name)
				pw.varint(s.Start - t.lastEnd)
				pw.uvarint(uint64(s.End - s.Start))
				pw.uvarint(uint64(s.Peer))
				pw.w.WriteByte(byte(s.Kind))
				var failed byte
				if s.Failed {
					failed = 1
				}
				pw.w.WriteByte(failed)
			}
		}
	}
	return pw.w.Flush()
}

type pendingReader struct {
	r       *bufio.Reader
	strings []string
	err     error
}

func (pr *pendingReader) fail(err error) {
	if pr.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		pr.err = err
	}
}

func (pr *pendingReader) uvarint() uint64 {
	v, err := binary.ReadUvarint(pr.r)
	if err != nil {
		pr.fail(err)
	}
	return v
}

func (pr *pendingReader) varint() int64 {
	v, err := binary.ReadVarint(pr.r)
	if err != nil {
		pr.fail(err)
	}
	return v
}

func (pr *pendingReader) bytes(b []byte) {
	if _, err := io.ReadFull(pr.r, b); err != nil {
		pr.fail(err)
	}
}

func (pr *pendingReader) byte() byte {
	b, err := pr.r.ReadByte()
	if err != nil {
		pr.fail(err)
	}
	return b
}

func (pr *pendingReader) string() string {
	n := pr.uvarint()
	if pr.err != nil {
		return ""
	}
	if n > 0 {
		if n > uint64(len(pr.strings)) {
			pr.fail(fmt.Errorf("string %d of %d", n, len(pr.strings)))
			return ""
		}
		return pr.strings[n-1]
	}
	l := pr.uvarint()
	switch {
	case pr.err != nil:
		return ""
	case l > maxPendingStringLen:
		pr.fail(fmt.Errorf("a string of %d bytes", l))
		return ""
	case len(pr.strings) >= maxPendingStrings:
		pr.fail(errors.New("too many strings"))
		return ""
	}
	b := make([]byte, l)
	pr.bytes(b)
	s := string(b)
	pr.strings = append(pr.strings, s)
	return s
}

// count reads a count, refusing one above limit.
func (pr *pendingReader) count(limit uint64) int {
	n := pr.uvarint()
	if n > limit {
		pr.fail(fmt.Errorf("a count of %d", n))
		return 0
	}
	return int(n)
}

// readPending reads what writePending wrote.
func readPending(r *bufio.Reader) ([]pendingState, error) {
	pr := &pendingReader{r: r}
	n := pr.count(math.MaxInt32)
	var out []pendingState
	for range n {
		if pr.err != nil {
			break
		}
		var ps pendingState
		pr.bytes(ps.ID[:])
		ps.At, ps.LastEnd = pr.varint(), pr.varint()
		peers, spans := pr.count(math.MaxInt32), pr.count(math.MaxInt32)
		if pr.err != nil {
			break
		}
		// Grown as read, not allocated up front: a damaged count fails
		// at the end of the file, not in the allocator.
		for range peers {
			ps.Peers = append(ps.Peers, Node{Name: pr.string(), Kind: NodeKind(pr.string()), System: pr.string()})
			if pr.err != nil {
				break
			}
		}
		for range spans {
			var s pendingSpan
			pr.bytes(s.SpanID[:])
			pr.bytes(s.ParentID[:])
			s.Service, s.Name = pr.string(), pr.string()
			s.Start = ps.LastEnd + pr.varint()
			s.End = s.Start + int64(pr.uvarint())
			peer := pr.uvarint()
			s.Kind, s.Failed = span.Kind(pr.byte()), pr.byte() != 0
			if pr.err != nil {
				break
			}
			if peer > uint64(len(ps.Peers)) {
				pr.fail(fmt.Errorf("span names peer %d of %d", peer, len(ps.Peers)))
				break
			}
			s.Peer = int32(peer)
			ps.Compact = append(ps.Compact, s)
		}
		out = append(out, ps)
	}
	if pr.err != nil {
		return nil, fmt.Errorf("pending traces: %w", pr.err)
	}
	return out, nil
}
