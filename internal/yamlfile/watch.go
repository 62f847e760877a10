package yamlfile

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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
// it comes back, watched again. So is a dir reached through a link that comes
// to lead to another directory, as a subdirectory of a Kubernetes ConfigMap
// volume does on every update (its ..data link is swapped). The watches are
// set up before the first load, so that no change between the two goes
// unseen. load must not block for long; it is always called on the caller's
// goroutine.
func WatchDir(ctx context.Context, log *slog.Logger, dir string, match func(name string) bool, load func()) error {
	if log == nil {
		log = slog.Default()
	}
	d := &dirWatch{log: log, dir: filepath.Clean(dir), match: match}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.dir, err)
	}
	defer w.Close()
	d.w = w
	// Stat before Add: were dir swapped in between, the next event would
	// find it another directory than the one stated, and watch it again.
	if d.watched, err = os.Stat(d.dir); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.Add(d.dir); err != nil {
		return fmt.Errorf("watch %s: %w", d.dir, err)
	}
	if err := w.Add(filepath.Dir(d.dir)); err != nil {
		log.Warn("a removed and re-created directory will not be watched again", "dir", d.dir, "err", err)
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
			if d.changes(ev) {
				settle.Reset(Settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events, so reload to catch up, and
			// follow dir in case it was among them.
			log.Warn("watching directory", "dir", d.dir, "err", err)
			d.follow(true)
			settle.Reset(Settle)
		case <-settle.C:
			load()
		}
	}
}

// dirWatch is what WatchDir remembers between events. It is only used from
// WatchDir's goroutine.
type dirWatch struct {
	w     *fsnotify.Watcher // watches dir and its parent
	log   *slog.Logger
	dir   string
	match func(name string) bool

	watched os.FileInfo // the directory dir was when last watched; nil while it is missing
}

// changes reports whether ev changes what is loaded from dir: a matching
// file in dir, or dir itself coming, going or being another directory.
func (d *dirWatch) changes(ev fsnotify.Event) bool {
	// fsnotify names an event watch path + "/" + entry: "./policies" for
	// the parent ".", "//policies" for the parent "/".
	name := filepath.Clean(ev.Name)
	switch {
	case d.follow(name == d.dir):
		return true
	case filepath.Dir(name) == d.dir:
		return d.match == nil || d.match(filepath.Base(name))
	default:
		return false // another entry of the parent
	}
}

// follow watches dir again if it may be another directory than the one last
// watched: one made again, renamed into place, or reached through a link that
// now leads to another (a watch follows a link once, when it is added). It
// may be when an event concerns dir itself, as a directory made again can
// have the inode of the removed one; otherwise when dir is not the file
// last watched. It reports whether dir came, went or may be another.
func (d *dirWatch) follow(itself bool) bool {
	fi, err := os.Stat(d.dir)
	switch {
	case err != nil && d.watched == nil:
		return false
	case err != nil:
		_ = d.w.Remove(d.dir) // gone with a removed directory; a renamed one's changes no longer matter
		d.watched = nil
		return true
	case !itself && d.watched != nil && os.SameFile(fi, d.watched):
		return false
	case d.watched != nil:
		// Added again, the path would watch the new directory, but the
		// old one's watch would stay with inotify until that directory
		// is removed (a release directory swapped away from may be kept).
		// What changes before the Add is seen by the load this causes.
		_ = d.w.Remove(d.dir)
	}
	if err := d.w.Add(d.dir); err != nil {
		d.log.Warn("watching re-created directory", "dir", d.dir, "err", err)
	}
	d.watched = fi
	return true
}
