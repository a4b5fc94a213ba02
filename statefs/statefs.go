// Package statefs writes the detector's state files: atomically (a
// temporary file in the same directory, synced, renamed into place, the
// directory synced) so a crash leaves the old version or the new one,
// never half of one. The writers take an FS, so tests can give them a disk
// that fails (ENOSPC, EIO) or is slow, without root.
package statefs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// FS is where state files go. Implementations are safe for concurrent use.
type FS interface {
	// WriteFile replaces path with data atomically and durably.
	WriteFile(path string, data []byte) error
}

// Streamer is an FS that writes a file from a stream, never holding it
// whole in memory: a checkpoint of a large state is written as it is
// encoded.
type Streamer interface {
	FS
	// WriteStream replaces path, atomically and durably as WriteFile
	// does, with what write writes; an error from write leaves path as
	// it was.
	WriteStream(path string, write func(io.Writer) error) error
}

// WriteStream writes path on fs with write: streamed when fs is a
// Streamer, else gathered in memory and written with WriteFile.
func WriteStream(fs FS, path string, write func(io.Writer) error) error {
	fs = Or(fs)
	if s, ok := fs.(Streamer); ok {
		return s.WriteStream(path, write)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	return fs.WriteFile(path, buf.Bytes())
}

// OS is the real file system.
type OS struct{}

var _ Streamer = OS{}

// WriteFile writes data to a temporary file beside path, syncs it, renames
// it over path and syncs the directory, so the rename survives a crash.
func (o OS) WriteFile(path string, data []byte) error {
	return o.WriteStream(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteStream is WriteFile with the data written by write, through a
// buffer, to the temporary file.
func (OS) WriteStream(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Or returns fs, or OS when fs is nil.
func Or(fs FS) FS {
	if fs == nil {
		return OS{}
	}
	return fs
}

// Faulty wraps an FS and fails every write with Err while Err is set, as a
// full (syscall.ENOSPC) or broken (syscall.EIO) disk does; Block, while
// set, holds each write until it is closed, as a slow disk does. The zero
// value (with FS nil) writes to the real file system. It counts the writes
// it failed.
type Faulty struct {
	FS FS

	mu     sync.Mutex
	err    error
	block  chan struct{}
	failed int
}

var _ Streamer = (*Faulty)(nil)

// ErrNoSpace and ErrIO are the errors of a full and of a failing disk, as
// the kernel reports them.
var (
	ErrNoSpace error = &os.PathError{Op: "write", Path: "(injected)", Err: syscall.ENOSPC}
	ErrIO      error = &os.PathError{Op: "write", Path: "(injected)", Err: syscall.EIO}
)

// Fail makes every write fail with err from now on; nil heals the disk.
func (f *Faulty) Fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// Slow holds every write from now on until the returned func is called.
func (f *Faulty) Slow() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.block = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.block == ch {
				f.block = nil
			}
			f.mu.Unlock()
			close(ch)
		})
	}
}

// Failed is how many writes have failed so far.
func (f *Faulty) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// WriteFile fails, blocks or writes, as set.
func (f *Faulty) WriteFile(path string, data []byte) error {
	if err := f.fault(path); err != nil {
		return err
	}
	return Or(f.FS).WriteFile(path, data)
}

// WriteStream fails, blocks or writes, as set.
func (f *Faulty) WriteStream(path string, write func(io.Writer) error) error {
	if err := f.fault(path); err != nil {
		return err
	}
	return WriteStream(f.FS, path, write)
}

// fault blocks while the disk is slow and returns the failure set, if any.
func (f *Faulty) fault(path string) error {
	f.mu.Lock()
	err, block := f.err, f.block
	if err != nil {
		f.failed++
	}
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// IsDiskFull reports whether err says the disk is full.
func IsDiskFull(err error) bool { return errors.Is(err, syscall.ENOSPC) }

// FaultLog logs a failing write without flooding the log: one error line
// when writes start failing, then at most one per Every while they keep
// failing (with how many failed since), and one line when a write works
// again, saying for how long it failed. Its methods are safe for
// concurrent use.
type FaultLog struct {
	Log   *slog.Logger
	What  string           // "write checkpoint", "write alert outbox", ...
	Every time.Duration    // default 1m
	Now   func() time.Time // nil: time.Now

	mu       sync.Mutex
	failing  bool
	since    time.Time
	lastLog  time.Time
	unlogged int
}

// Failed records a failed write.
func (f *FaultLog) Failed(err error, attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	every := f.Every
	if every <= 0 {
		every = time.Minute
	}
	if !f.failing {
		f.failing, f.since, f.lastLog, f.unlogged = true, now, now, 0
		f.Log.Error(f.What+" failed", append(attrs, "err", err, "disk_full", IsDiskFull(err))...)
		return
	}
	f.unlogged++
	if now.Sub(f.lastLog) < every {
		return
	}
	f.Log.Error(f.What+" still failing", append(attrs, "err", err, "failures_since_last_log", f.unlogged,
		"failing_for", now.Sub(f.since).Round(time.Second))...)
	f.lastLog, f.unlogged = now, 0
}

// Succeeded records a write that worked.
func (f *FaultLog) Succeeded(attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.failing {
		return
	}
	f.failing = false
	f.Log.Info(f.What+" works again", append(attrs, "failed_for", f.now().Sub(f.since).Round(time.Millisecond))...)
}

// Failing reports whether the last write failed.
func (f *FaultLog) Failing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failing
}

func (f *FaultLog) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}
