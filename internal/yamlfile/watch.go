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
// is lost with it. It also watches dir's parent for dir itself, because a
// directory removed and made again (rm -rf and mkdir, or a new one renamed
// into place) is a new directory, whose changes a watch on the old one never
// sees: load is called when dir goes, so that its caller can say so, and when
// it comes back, watched again. The watches are set up before the first load,
// so that no change between the two goes unseen. load must not block for
// long; it is always called on the caller's goroutine.
func WatchDir(ctx context.Context, log *slog.Logger, dir string, match func(name string) bool, load func()) error {
	if log == nil {
		log = slog.Default()
	}
	dir = filepath.Clean(dir)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := w.Add(filepath.Dir(dir)); err != nil {
		log.Warn("a removed and re-created directory will not be watched again", "dir", dir, "err", err)
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
			if changes(w, log, dir, ev, match) {
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

// changes reports whether ev, an event of w, which watches dir and its
// parent, changes what is loaded from dir: a matching file in dir, or dir
// itself coming or going. It watches dir again when dir comes back.
func changes(w *fsnotify.Watcher, log *slog.Logger, dir string, ev fsnotify.Event, match func(name string) bool) bool {
	// fsnotify names an event watch path + "/" + entry: "./policies" for
	// the parent ".", "//policies" for the parent "/".
	name := filepath.Clean(ev.Name)
	switch {
	case name == dir && ev.Has(fsnotify.Create):
		if err := w.Add(dir); err != nil {
			log.Warn("watching re-created directory", "dir", dir, "err", err)
		}
		return true
	case name == dir && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)):
		_ = w.Remove(dir) // gone with a removed directory; a renamed one's changes no longer matter
		return true
	case filepath.Dir(name) == dir:
		return match == nil || match(filepath.Base(name))
	default:
		return false // another entry of the parent
	}
}
