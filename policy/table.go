package policy

import (
	"iter"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"github.com/weir-mesh/weir/internal/history"
)

// Table is, per service with a policy or frozen weights, what its traffic
// should do: what Engine.Routing returns and a snapshot build takes. It is
// immutable. A table made by Next remembers which services' routing
// differs from the table before it, so that whoever built from an earlier
// table learns from ChangedSince which services to look at, as
// discovery.Model does for instances, rather than comparing every policy.
// Next shares with the table before it all but the changed services'
// routing (a persistent radix tree), so that a change of one service's
// routing costs a look at that service, not a copy of every service's.
// Its zero value is the empty table, with no history.
type Table struct {
	routes  *iradix.Tree[Routing] // nil in the zero table
	history history.History
}

// TableOf returns a table of routes with no past: no table is told to
// have changed since a table made before it. A table shares the maps of
// the routings it is given (a snapshot builder tells an unchanged policy
// by its very Weights map): they must not change afterwards.
func TableOf(routes map[string]Routing) Table {
	txn := iradix.New[Routing]().Txn()
	for svc, r := range routes {
		txn.Insert([]byte(svc), r)
	}
	return Table{routes: txn.CommitOnly(), history: history.New()}
}

// Next returns a table that follows t, in which the routing of each
// service changed names is what routing returns for it (none if it
// reports false), and every other service's is t's. The zero table has no
// history to follow: its Next has none either, like TableOf's.
func (t Table) Next(changed []string, routing func(service string) (Routing, bool)) Table {
	routes := t.routes
	if routes == nil {
		routes = iradix.New[Routing]()
	}
	txn := routes.Txn()
	for _, svc := range changed {
		if r, ok := routing(svc); ok {
			txn.Insert([]byte(svc), r)
		} else {
			txn.Delete([]byte(svc))
		}
	}
	next := txn.CommitOnly()
	if t.history.IsZero() {
		return Table{routes: next, history: history.New()}
	}
	return Table{routes: next, history: t.history.Next(changed)}
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
	if t.routes == nil {
		return Routing{}, false
	}
	return t.routes.Get([]byte(service))
}

// Len returns how many services have a routing.
func (t Table) Len() int {
	if t.routes == nil {
		return 0
	}
	return t.routes.Len()
}

// All yields every service and its routing, in name order.
func (t Table) All() iter.Seq2[string, Routing] {
	return func(yield func(string, Routing) bool) {
		if t.routes == nil {
			return
		}
		it := t.routes.Root().Iterator()
		for k, r, ok := it.Next(); ok; k, r, ok = it.Next() {
			if !yield(string(k), r) {
				return
			}
		}
	}
}

// Map returns the routing of every service, by service: a map of its own.
func (t Table) Map() map[string]Routing {
	out := make(map[string]Routing, t.Len())
	for svc, r := range t.All() {
		out[svc] = r
	}
	return out
}
