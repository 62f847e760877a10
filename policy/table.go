package policy

import (
	"iter"
	"maps"
	"slices"
	"sync/atomic"
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
	history tableHistory
}

// tableHistory is where a table came from: the tables before it, each
// followed by the next through Next, and which services' routing differs
// between each and the next.
type tableHistory struct {
	id    uint64 // 0 for the zero Table
	steps []tableStep
}

// tableStep is one table of a history and the services whose routing
// differs between it and the table after it.
type tableStep struct {
	id      uint64
	changed []string
}

// maxTableHistory is how many tables back ChangedSince looks: enough for
// the tables a debounced build skips during a burst of operations.
const maxTableHistory = 64

var tableIDs atomic.Uint64

// TableOf returns a table of routes, without a history; routes must not be
// changed afterwards.
func TableOf(routes map[string]Routing) Table {
	return Table{routes: routes, history: tableHistory{id: tableIDs.Add(1)}}
}

// Next returns a table of routes that follows t, in which the routing of
// the services changed names may differ from t's and no other's does;
// routes must not be changed afterwards.
func (t Table) Next(routes map[string]Routing, changed []string) Table {
	if t.history.id == 0 {
		return TableOf(routes)
	}
	steps := t.history.steps[max(0, len(t.history.steps)-maxTableHistory+1):]
	steps = append(slices.Clip(steps), tableStep{t.history.id, slices.Clone(changed)})
	return Table{routes: routes, history: tableHistory{id: tableIDs.Add(1), steps: steps}}
}

// ChangedSince returns, sorted, the services whose routing may differ
// between earlier and t, and true; or false when t did not come from
// earlier through at most maxTableHistory calls of Next, and only
// comparing every service's routing tells.
func (t Table) ChangedSince(earlier Table) ([]string, bool) {
	if earlier.history.id == 0 {
		return nil, false
	}
	if earlier.history.id == t.history.id {
		return nil, true
	}
	steps := t.history.steps
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].id != earlier.history.id {
			continue
		}
		var changed []string
		for _, st := range steps[i:] {
			changed = append(changed, st.changed...)
		}
		slices.Sort(changed)
		return slices.Compact(changed), true
	}
	return nil, false
}

// Same reports whether t and o are the very same table, which then hold
// the same routing; tables with the same routing made apart are not.
func (t Table) Same(o Table) bool { return t.history.id == o.history.id }

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
