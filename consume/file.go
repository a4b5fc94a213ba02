package consume

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// File formats for replay. OTLP JSON lines is what the Collector's file
// exporter writes: one ExportTraceServiceRequest per line. Length-prefixed
// protobuf is one ExportTraceServiceRequest per record, each preceded by its
// length as a 4-byte big-endian unsigned integer (the Collector's file
// exporter with encoding proto writes the same framing). Either may be
// gzip-compressed; gzip is detected from the content, not the name.

// maxRecord bounds one replay record, so a corrupt length cannot make the
// reader allocate gigabytes.
const maxRecord = 256 << 20

// ReadFile calls fn with each message of the file at path, in order. The
// message slice is only valid during the call. Format is otlp_json or
// otlp_proto; "" guesses from the name (".pb", ".proto", ".bin" mean
// protobuf, anything else JSON lines). It stops at the first error fn
// returns.
func ReadFile(path string, format Encoding, fn func(msg []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if format == "" {
		format = GuessEncoding(path)
	}
	r, err := maybeGunzip(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if format == EncodingProto {
		err = readLengthPrefixed(r, fn)
	} else {
		err = readLines(r, fn)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// GuessEncoding picks a replay file's format from its name.
func GuessEncoding(path string) Encoding {
	p := strings.TrimSuffix(strings.ToLower(path), ".gz")
	for _, ext := range []string{".pb", ".proto", ".bin", ".binpb"} {
		if strings.HasSuffix(p, ext) {
			return EncodingProto
		}
	}
	return EncodingJSON
}

func maybeGunzip(br *bufio.Reader) (io.Reader, error) {
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return bufio.NewReaderSize(z, 1<<20), nil
	}
	return br, nil
}

func readLines(r io.Reader, fn func([]byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxRecord)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := fn(b); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

func readLengthPrefixed(r io.Reader, fn func([]byte) error) error {
	var hdr [4]byte
	var buf []byte
	for rec := 1; ; rec++ {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("record %d: length: %w", rec, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxRecord {
			return fmt.Errorf("record %d: length %d exceeds %d bytes", rec, n, maxRecord)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("record %d: %w", rec, err)
		}
		if err := fn(buf); err != nil {
			return fmt.Errorf("record %d: %w", rec, err)
		}
	}
}

// WriteLengthPrefixed appends one record in the replay protobuf framing.
func WriteLengthPrefixed(w io.Writer, msg []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(msg)
	return err
}
