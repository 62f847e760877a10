package file

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/yamlfile"
)

// Source is a discovery.Source that reads a catalog file and re-reads it after
// every change. Its zero value is not usable: Path must be set.
type Source struct {
	Path   string
	Logger *slog.Logger // nil means slog.Default()
}

var _ discovery.Source = (*Source)(nil)

// Run delivers the catalog to sink, then watches the file until ctx is done,
// delivering every change. A file that cannot be read or parsed is rejected
// and the last model stays: a missing file is a problem to report, never an
// empty world. Run returns nil when ctx is done, and an error only if the
// file's directory cannot be watched.
func (s *Source) Run(ctx context.Context, sink discovery.Sink) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("file", s.Path)
	st := &state{path: s.Path, sink: sink, log: log}
	// Every event in the directory reloads: a Kubernetes ConfigMap update
	// swaps a hidden ..data link rather than the file itself, and load
	// ignores reloads that change nothing.
	return yamlfile.WatchDir(ctx, log, filepath.Dir(s.Path), nil, st.load)
}

// state is what Run remembers between loads. It is only used from Run's
// goroutine.
type state struct {
	path string
	sink discovery.Sink
	log  *slog.Logger

	applied    discovery.Model
	hasApplied bool
	rejected   string // the last rejection since the last good load
}

func (st *state) load() {
	data, err := os.ReadFile(st.path)
	var m discovery.Model
	if err == nil {
		m, err = Parse(st.path, data)
	}
	if err != nil {
		if err.Error() == st.rejected {
			return
		}
		st.rejected = err.Error()
		kept := "keeping the last catalog"
		if !st.hasApplied {
			kept = "there is no earlier catalog to keep"
		}
		st.log.Warn("catalog rejected; "+kept, "err", err)
		st.sink.Reject(err)
		return
	}
	wasRejected := st.rejected != ""
	st.rejected = ""
	m = st.applied.Next(m) // tells consumers which services changed
	if st.hasApplied && m.Equal(st.applied) && !wasRejected {
		return
	}
	// After a rejection the model is delivered even when unchanged: that is
	// how the sink learns the rejection is over.
	st.applied, st.hasApplied = m, true
	st.log.Info("catalog applied", "services", len(m.Services()))
	st.sink.Update(m)
}
