// Package discovery holds weir's view of the world: which services exist, which
// instances back each of them, which version each instance runs, and whether it
// is healthy. A Model is an immutable value; sources (a catalog file, Consul)
// emit a new Model whenever their view changes.
package discovery

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/weir-mesh/weir/internal/history"
)

// Health is the health of one instance, in Consul's vocabulary.
type Health int

const (
	// Passing instances receive traffic.
	Passing Health = iota
	// Warning instances receive traffic unless a source is told to exclude them.
	Warning
	// Critical instances are removed from endpoints.
	Critical
	// Maintenance instances are drained: existing connections finish, new
	// requests go elsewhere.
	Maintenance
)

var healthNames = [...]string{Passing: "passing", Warning: "warning", Critical: "critical", Maintenance: "maintenance"}

// String returns the lower-case name used in catalog files and logs.
func (h Health) String() string {
	if h < 0 || int(h) >= len(healthNames) {
		return fmt.Sprintf("health(%d)", int(h))
	}
	return healthNames[h]
}

// ParseHealth returns the Health named s ("" means passing).
func ParseHealth(s string) (Health, error) {
	if s == "" {
		return Passing, nil
	}
	for h, name := range healthNames {
		if name == s {
			return Health(h), nil
		}
	}
	return 0, fmt.Errorf("unknown health %q (valid: passing, warning, critical, maintenance)", s)
}

// Serving reports whether an instance in this state should receive new requests.
func (h Health) Serving() bool { return h == Passing || h == Warning }

// Instance is one network endpoint of a service.
type Instance struct {
	ID      string
	Address string // an IP literal, as ParseAddress returns it
	Port    uint32
	Version string // "" when the source could not tell
	Health  Health
}

// ParseAddress returns s, an instance's address, in canonical form (so
// that one address written two ways is one endpoint), or why no proxy could
// connect to it. It must be an IP literal without an IPv6 zone, and not an
// address that names no one host: unspecified (0.0.0.0 or ::, which a
// connecting proxy would take for itself), multicast or broadcast.
func ParseAddress(s string) (string, error) {
	addr, err := netip.ParseAddr(s)
	host := addr.Unmap() // ::ffff:0.0.0.0 is 0.0.0.0
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not an IP address: an IP literal such as 10.0.0.7 or 2001:db8::7 is required (hostnames are not resolved)", s)
	case addr.Zone() != "":
		return "", fmt.Errorf("%q has an IPv6 zone, which is not supported: an IP literal without %%zone is required", s)
	case host.IsUnspecified():
		return "", fmt.Errorf("%q is the unspecified address, which a proxy would connect to as itself: the instance's own IP is required", s)
	case host.IsMulticast():
		return "", fmt.Errorf("%q is a multicast address: the instance's own IP is required", s)
	case host == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "", fmt.Errorf("%q is the broadcast address: the instance's own IP is required", s)
	}
	return addr.String(), nil
}

// Service is a named set of instances, sorted by ID.
type Service struct {
	Name      string
	Instances []Instance
}

// Versions returns the distinct versions of the service's instances, sorted.
func (s Service) Versions() []string {
	var vs []string
	for _, in := range s.Instances {
		vs = append(vs, in.Version)
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// ServingCount returns, per version, how many instances can take new requests.
// Every version of the service has an entry, possibly zero.
func (s Service) ServingCount() map[string]int {
	counts := make(map[string]int)
	for _, in := range s.Instances {
		if _, ok := counts[in.Version]; !ok {
			counts[in.Version] = 0
		}
		if in.Health.Serving() {
			counts[in.Version]++
		}
	}
	return counts
}

// Model is an immutable snapshot of every known service. Its zero value is an
// empty model, ready for use.
type Model struct {
	services []Service // sorted by name
	// history is where the model came from: the models before it, each
	// made from the one before by Next, and which services differ between
	// each and the next. NewModel gives every model a new one, and Next
	// every model it makes (it may return the model it was called on).
	history history.History
}

// NewModel returns a Model holding copies of services, sorted by name, with each
// service's instances sorted by ID. Callers validate names before; NewModel only
// rejects duplicates, which would make the model ambiguous.
func NewModel(services []Service) (Model, error) {
	out := make([]Service, len(services))
	for i, s := range services {
		out[i] = Service{Name: s.Name, Instances: slices.Clone(s.Instances)}
		slices.SortFunc(out[i].Instances, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	}
	slices.SortFunc(out, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	for i := 1; i < len(out); i++ {
		if out[i].Name == out[i-1].Name {
			return Model{}, fmt.Errorf("service %q is listed twice", out[i].Name)
		}
	}
	return Model{services: out, history: history.New()}, nil
}

// Next returns next, as the model that follows m: it holds next's
// services, sharing those whose instances are as in m with m, and
// remembers which services differ, so that a consumer that used m (or a
// model before it) learns from ChangedSince which services to look at
// rather than comparing every one. If nothing differs, it returns m
// itself, unless m is the zero Model: then it returns a model without a
// history. Sources call it with every new model they make.
func (m Model) Next(next Model) Model {
	out := make([]Service, 0, len(next.services))
	var changed []string
	old := m.services
	for _, svc := range next.services {
		for len(old) > 0 && old[0].Name < svc.Name {
			changed, old = append(changed, old[0].Name), old[1:] // gone
		}
		var prev *Service
		if len(old) > 0 && old[0].Name == svc.Name {
			prev, old = &old[0], old[1:]
		}
		if prev != nil && slices.Equal(prev.Instances, svc.Instances) {
			out = append(out, *prev)
			continue
		}
		out, changed = append(out, svc), append(changed, svc.Name) // new or changed
	}
	for _, gone := range old {
		changed = append(changed, gone.Name)
	}
	if m.history.IsZero() { // the zero Model: no history to keep
		return Model{services: out, history: history.New()}
	}
	if len(changed) == 0 {
		return m
	}
	return Model{services: out, history: m.history.Next(changed)}
}

// ChangedSince returns the names of the services whose instances may
// differ between earlier and m, sorted, and true; or false when m did not
// come from earlier through at most history.Max calls of Next that changed
// something (one that changed nothing returned its model), and only
// comparing every service tells. A model made by NewModel, or by Next on
// the zero Model, has no history before it.
func (m Model) ChangedSince(earlier Model) ([]string, bool) {
	return m.history.ChangedSince(earlier.history)
}

// Services returns the services sorted by name. The slice must not be modified.
func (m Model) Services() []Service { return m.services }

// Service returns the named service.
func (m Model) Service(name string) (Service, bool) {
	i, ok := slices.BinarySearchFunc(m.services, name, func(s Service, n string) int { return cmp.Compare(s.Name, n) })
	if !ok {
		return Service{}, false
	}
	return m.services[i], true
}

// Equal reports whether m and o hold the same services and instances.
func (m Model) Equal(o Model) bool {
	if m.history.Same(o.history) {
		return true
	}
	return slices.EqualFunc(m.services, o.services, func(a, b Service) bool {
		return a.Name == b.Name && slices.Equal(a.Instances, b.Instances)
	})
}

// Source produces Models. Run blocks until ctx is done, calling sink for every
// change; it must not call sink concurrently.
type Source interface {
	Run(ctx context.Context, sink Sink) error
}

// Sink receives what a Source learns: a new Model, or the rejection of an
// input (a bad catalog edit, an unreachable Consul) while the last Model stays.
type Sink interface {
	Update(Model)
	Reject(err error)
}

// Status is how a source's view relates to its upstream, for /readyz and
// metrics.
type Status struct {
	// Synced reports whether the first full sync has completed.
	Synced bool
	// Stale reports whether the upstream is failing and the last known
	// model is being served instead; StaleSince is when that began.
	Stale      bool
	StaleSince time.Time
	// Error is the latest upstream error while stale.
	Error string
}

// StatusReporter is implemented by sources whose upstream can fail.
type StatusReporter interface {
	Status() Status
}

// ServiceStatusReporter is implemented by sources that can tell, service
// by service, whether what they know is stale. ServiceStatus must not wait
// on the source's sink: a rollout engine asks it while holding its lock.
type ServiceStatusReporter interface {
	ServiceStatus(service string) Status
}
