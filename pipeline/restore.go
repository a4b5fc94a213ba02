package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/causeway/causeway/graph/baselines"
)

// RestoreBaselines loads the snapshot at path if there is one. A snapshot
// that cannot be read is set aside (renamed *.unreadable), one learned
// from windows of another length too (renamed *.window-LENGTH), and
// learning starts afresh: a detector that will not start is worse than one
// that relearns normal.
func RestoreBaselines(bs *baselines.Baselines, path string, log *slog.Logger) {
	found, err := bs.LoadFile(path)
	var other *baselines.OtherWindowError
	switch {
	case errors.As(err, &other):
		aside := SetAside(path, other)
		log.Warn("baseline snapshot learned from windows of another length; relearning", "path", path,
			"snapshot_window", other.Snapshot, "window", other.Running, "moved_to", aside)
	case err != nil:
		aside := path + ".unreadable"
		_ = os.Rename(path, aside)
		log.Error("baseline snapshot unreadable; learning afresh", "path", path, "moved_to", aside, "err", err)
	case found:
		edges, ops := bs.Len()
		log.Info("baselines restored", "path", path, "edges", edges, "operations", ops)
	default:
		log.Info("no baseline snapshot yet; learning from scratch", "path", path)
	}
}

// SetAside renames a state file learned from windows of another length
// out of the way, naming that length, and returns its new path.
func SetAside(path string, other *baselines.OtherWindowError) string {
	aside := fmt.Sprintf("%s.window-%v", path, other.Snapshot)
	_ = os.Rename(path, aside)
	return aside
}
