// Package bench holds end-to-end benchmarks that cross package lines: the
// decode, join and aggregate path as the detector runs it. It has no code
// of its own; run `make bench`.
package bench
