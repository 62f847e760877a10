package yamlfile

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Settle is how long a directory must be quiet before a watcher reloads: long
// enough to coalesce the create, write and rename events of one save, short
// enough that an operator sees the effect at once.
const Settle = 50 * time.Millisecond

// WatchDir calls load once and then after every burst of changes in dir, until
// ctx is done; it returns nil then. match filters events by the base name of
// the file they concern (nil matches everything).
//
// It watches the directory rather than the files, because editors and mv
// replace a file by renaming another over it, and a watch on the replaced file
// is lost with it. The watch is set up before the first load, so that no
// change between the two goes unseen. load must not block for long; it is
// always called on the caller's goroutine.
func WatchDir(ctx context.Context, log *slog.Logger, dir string, match func(name string) bool, load func()) error {
	if log == nil {
		log = slog.Default()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	load()

	settle := time.NewTimer(Settle)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if match == nil || match(filepath.Base(ev.Name)) {
				settle.Reset(Settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events, so reload to catch up.
			log.Warn("watching directory", "dir", dir, "err", err)
			settle.Reset(Settle)
		case <-settle.C:
			load()
		}
	}
}
