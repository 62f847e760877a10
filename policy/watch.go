package policy

import (
	"context"
	"log/slog"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

// Watcher loads a policy directory and reloads it whenever it changes. Its
// zero value is not usable: Dir must be set.
type Watcher struct {
	Dir    string
	Logger *slog.Logger // nil means slog.Default()
}

// Run calls onChange with the directory's Set, or with an empty Set and the
// error if the directory is bad, and then again after every change that makes
// a difference, until ctx is done; it returns nil then, and an error only if
// the directory cannot be watched. onChange is called on Run's goroutine, so
// it should hand the Set on rather than act on it at length.
//
// Every event in the directory causes a reload, not only events for policy
// files: a Kubernetes ConfigMap volume swaps its files by renaming a hidden
// ..data link, and reloading a few small files is cheap.
func (w *Watcher) Run(ctx context.Context, onChange func(Set, error)) error {
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("dir", w.Dir)
	var (
		called  bool
		lastSet Set
		lastErr string
	)
	load := func() {
		set, err := LoadDir(w.Dir)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if called && errText == lastErr && set.Equal(lastSet) {
			return
		}
		called, lastSet, lastErr = true, set, errText
		if err != nil {
			log.Warn("policies rejected", "err", err)
		} else {
			log.Info("policies loaded", "services", set.Len())
		}
		onChange(set, err)
	}
	return yamlfile.WatchDir(ctx, log, w.Dir, nil, load)
}
