package policy

import (
	"iter"
	"maps"

	"github.com/weir-mesh/weir/internal/history"
)

// Table is, per service with a policy or frozen weights, what its traffic
// should do: what Engine.Routing returns and a snapshot build takes. It is
// immutable. A table made by Next remembers which services' routing
// differs from the table before it, so that whoever built from an earlier
// table learns from ChangedSince which services to look at, as
// discovery.Model does for instances, rather than comparing every policy.
// Its zero value is the empty table, with no history.
type Table struct {
	routes  map[string]Routing
	history history.History
}

// TableOf returns a table of routes with no past: no table is told to
// have changed since a table made before it. routes must not be changed
// afterwards.
func TableOf(routes map[string]Routing) Table {
	return Table{routes: routes, history: history.New()}
}

// Next returns a table of routes that follows t, in which the routing of
// the services changed names may differ from t's and no other's does;
// routes must not be changed afterwards. The zero table has no history to
// follow: its Next is TableOf(routes).
func (t Table) Next(routes map[string]Routing, changed []string) Table {
	return Table{routes: routes, history: t.history.Next(changed)}
}

// ChangedSince returns, sorted, the services whose routing may differ
// between earlier and t, and true; or false when t did not come from
// earlier through at most history.Max calls of Next, and only comparing
// every service's routing tells.
func (t Table) ChangedSince(earlier Table) ([]string, bool) {
	return t.history.ChangedSince(earlier.history)
}

// Same reports whether t and o are the very same table, which then hold
// the same routing; tables with the same routing made apart are not, nor
// are two zero tables.
func (t Table) Same(o Table) bool { return t.history.Same(o.history) }

// Get returns service's routing, and whether it has one.
func (t Table) Get(service string) (Routing, bool) {
	r, ok := t.routes[service]
	return r, ok
}

// Len returns how many services have a routing.
func (t Table) Len() int { return len(t.routes) }

// All yields every service and its routing, in no order.
func (t Table) All() iter.Seq2[string, Routing] { return maps.All(t.routes) }

// Map returns the routing of every service, by service. It must not be
// changed.
func (t Table) Map() map[string]Routing { return t.routes }
