package file

import (
	"path/filepath"
	"testing"

	"github.com/weir-mesh/weir/internal/configmaptest"
)

// TestSourceConfigMap checks that every update of a catalog mounted from a
// Kubernetes ConfigMap applies, whether the catalog is at the volume's root
// or in a directory of it (an item with a path like conf/catalog.yaml), where
// every update after the first once went unseen.
func TestSourceConfigMap(t *testing.T) {
	for _, sub := range []string{".", "conf"} {
		t.Run(sub, func(t *testing.T) {
			mount := t.TempDir()
			name := filepath.Join(sub, "catalog.yaml")
			vol := configmaptest.New(t, mount, map[string]string{name: catalog("a")})
			sink := start(t, filepath.Join(mount, name))
			sink.wantUpdate(t, "a")
			for _, id := range []string{"b", "c", "d"} {
				vol.Update(map[string]string{name: catalog(id)}, nil)
				sink.wantUpdate(t, id)
			}
		})
	}
}

// TestSourceConfigMapUpdatedAtStart checks that an update of a ConfigMap
// catalog that is under way while weir starts applies, whichever step of it
// the first load follows: the first load reads the old catalog until ..data
// is swapped, and the update's later steps are then seen.
func TestSourceConfigMapUpdatedAtStart(t *testing.T) {
	for _, at := range configmaptest.Steps() {
		t.Run(string(at), func(t *testing.T) {
			mount := t.TempDir()
			vol := configmaptest.New(t, mount, map[string]string{"catalog.yaml": catalog("a")})
			var sink chanSink
			first := "b"
			if at == configmaptest.Written || at == configmaptest.Linked {
				first = "a"
			}
			vol.Update(map[string]string{"catalog.yaml": catalog("b")}, func(s configmaptest.Step) {
				if s == at {
					sink = start(t, filepath.Join(mount, "catalog.yaml"))
					sink.wantUpdate(t, first)
				}
			})
			if first != "b" {
				sink.wantUpdate(t, "b")
			}
		})
	}
}
