package policy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/weir-mesh/weir/internal/yamlfile"
)

// Set is an immutable collection of policies, at most one per service. Its
// zero value is an empty Set, ready for use.
type Set struct {
	policies map[string]Policy
}

// NewSet returns a Set of policies, which must be for distinct services; every
// policy for a service that already has one is reported, naming both places.
// The Set holds copies: changing a policy's Weights afterwards does not
// change it.
func NewSet(policies ...Policy) (Set, error) {
	s := Set{policies: make(map[string]Policy, len(policies))}
	var errs []error
	for _, p := range policies {
		if prev, dup := s.policies[p.Service]; dup {
			errs = append(errs, &yamlfile.Error{File: p.File, Line: p.Line, Field: "service",
				Msg: fmt.Sprintf("service %q already has a policy in %s", p.Service, prev.Where())})
			continue
		}
		p.Weights = maps.Clone(p.Weights)
		s.policies[p.Service] = p
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	return s, nil
}

// Get returns the policy of service. Its Weights are a copy.
func (s Set) Get(service string) (Policy, bool) {
	p, ok := s.policies[service]
	p.Weights = maps.Clone(p.Weights)
	return p, ok
}

// Services returns the services that have a policy, sorted.
func (s Set) Services() []string { return slices.Sorted(maps.Keys(s.policies)) }

// Len returns the number of policies.
func (s Set) Len() int { return len(s.policies) }

// Equal reports whether s and o hold the same policies, read from the same
// places.
func (s Set) Equal(o Set) bool {
	return maps.EqualFunc(s.policies, o.policies, func(a, b Policy) bool { return reflect.DeepEqual(a, b) })
}

// LoadDir reads every policy file directly in dir: the regular files (or
// links to them) named *.yaml or *.yml, in name order, skipping hidden files
// and editor leftovers. It is all or nothing: if any file is bad, it returns
// the errors of all bad files, joined, and an empty Set, so that the caller
// keeps its last good Set rather than apply half an edit. An empty directory
// is an empty Set; a missing one is an error.
func LoadDir(dir string) (Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Set{}, fmt.Errorf("policy directory: %w", err)
	}
	var (
		policies []Policy
		errs     []error
	)
	for _, e := range entries { // ReadDir sorts by name
		if !IsPolicyFile(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		p, err := loadFile(path)
		if err != nil {
			errs = append(errs, err)
		} else if p != nil {
			policies = append(policies, *p)
		}
	}
	set, err := NewSet(policies...)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	return set, nil
}

// loadFile reads one policy file; it returns nil, nil for what turns out not
// to be a regular file (a directory named x.yaml, say).
func loadFile(path string) (*Policy, error) {
	data, ok, err := ReadFile(path)
	if err != nil || !ok {
		return nil, err
	}
	p, err := ParseFile(path, data)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// ReadFile returns the content of the policy file at path, one IsPolicyFile
// names, and true; or false for what turns out not to be a regular file (a
// directory named x.yaml, say). It follows links, as Kubernetes ConfigMap
// volumes use them. LoadDir reads files with it, and so should whatever
// else reads a policy directory (weir ctl diff).
func ReadFile(path string) ([]byte, bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	data, err := os.ReadFile(path)
	return data, err == nil, err
}

// IsPolicyFile reports whether a file named name in a policy directory is
// read: *.yaml and *.yml, in any case (greeter.YAML too, rather than leave
// it unread without a word), but not hidden files (.#x.yaml is an Emacs lock,
// ..data a Kubernetes volume's internals) nor editor backups and swap files.
// It is exported, as ReadFile is, so that whatever else reads a policy
// directory (weir ctl diff) reads the same files as LoadDir.
func IsPolicyFile(name string) bool {
	switch {
	case strings.HasPrefix(name, "."), strings.HasSuffix(name, "~"), strings.HasSuffix(name, ".swp"):
		return false
	}
	ext := filepath.Ext(name)
	return strings.EqualFold(ext, ".yaml") || strings.EqualFold(ext, ".yml")
}
