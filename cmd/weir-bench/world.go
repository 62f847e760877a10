package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// world is the generated catalog and policy both servers read from files:
// services svc-0000… with endpoints split over versions v1 and v2, and a
// fixed-weights policy for svc-0000, the service the weight changes move.
type world struct {
	dir       string
	services  int
	endpoints int
	ports     []uint32 // port of each service's first endpoint; the rest use 8080
}

func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// weightedService is the service whose weights the scenarios change.
var weightedService = serviceName(0)

func newWorld(dir string, services, endpoints int) (*world, error) {
	w := &world{dir: dir, services: services, endpoints: endpoints, ports: make([]uint32, services)}
	for i := range w.ports {
		w.ports[i] = 8080
	}
	if err := os.MkdirAll(w.policyDir(), 0o755); err != nil {
		return nil, err
	}
	if err := w.writeCatalog(); err != nil {
		return nil, err
	}
	return w, w.writeWeights(weights{90, 10})
}

func (w *world) catalogPath() string { return filepath.Join(w.dir, "catalog", "catalog.yaml") }
func (w *world) policyDir() string   { return filepath.Join(w.dir, "policies") }

// weights is the split of weightedService, in percent for v1 and v2.
type weights struct{ v1, v2 int }

// nextWeights alternates between 90/10 and 50/50.
func (ws weights) next() weights {
	if ws.v1 == 90 {
		return weights{50, 50}
	}
	return weights{90, 10}
}

// catalog returns the catalog file's text.
func (w *world) catalog() []byte {
	var b strings.Builder
	b.WriteString("services:\n")
	for s := range w.services {
		fmt.Fprintf(&b, "  - name: %s\n    instances:\n", serviceName(s))
		for e := range w.endpoints {
			port := uint32(8080)
			if e == 0 {
				port = w.ports[s]
			}
			fmt.Fprintf(&b, "      - {id: %s-%03d, address: 10.%d.%d.%d, port: %d, version: v%d}\n",
				serviceName(s), e, s/250, s%250, e%250+1, port, e%2+1)
		}
	}
	return []byte(b.String())
}

// moveEndpoint moves the first endpoint of service s to port and rewrites
// the catalog.
func (w *world) moveEndpoint(s int, port uint32) error {
	w.ports[s] = port
	return w.writeCatalog()
}

func (w *world) writeCatalog() error {
	if err := os.MkdirAll(filepath.Dir(w.catalogPath()), 0o755); err != nil {
		return err
	}
	return writeAtomic(w.catalogPath(), w.catalog())
}

// writeWeights rewrites weightedService's policy file.
func (w *world) writeWeights(ws weights) error {
	text := fmt.Sprintf("service: %s\nstrategy: fixed\nweights: {v1: %d, v2: %d}\n", weightedService, ws.v1, ws.v2)
	return writeAtomic(w.policyPath(), []byte(text))
}

func (w *world) policyPath() string { return filepath.Join(w.policyDir(), weightedService+".yaml") }

// readWeights returns the split weightedService's policy file gives.
func (w *world) readWeights() (weights, error) {
	data, err := os.ReadFile(w.policyPath())
	if err != nil {
		return weights{}, err
	}
	var ws weights
	_, err = fmt.Sscanf(string(data[strings.Index(string(data), "weights:"):]), "weights: {v1: %d, v2: %d}", &ws.v1, &ws.v2)
	return ws, err
}

// writeAtomic replaces path by renaming a file written next to its
// directory over it, so that a watcher never reads half a file, and
// concurrent writers never mix theirs: the last rename wins.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(filepath.Dir(path)), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err := errors.Join(err, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
