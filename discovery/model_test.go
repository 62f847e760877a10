package discovery

import (
	"fmt"
	"slices"
	"testing"

	"github.com/weir-mesh/weir/internal/history"
)

func mustModel(t *testing.T, services ...Service) Model {
	t.Helper()
	m, err := NewModel(services)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func svc(name string, ports ...uint32) Service {
	s := Service{Name: name}
	for i, p := range ports {
		s.Instances = append(s.Instances, Instance{ID: fmt.Sprintf("%s-%d", name, i), Address: "10.0.0.1", Port: p, Version: "v1"})
	}
	return s
}

func changedSince(t *testing.T, m, earlier Model) []string {
	t.Helper()
	changed, ok := m.ChangedSince(earlier)
	if !ok {
		t.Fatal("ChangedSince: the earlier model is not in the history")
	}
	return changed
}

// TestNextRemembersWhatChanged: a model made by Next names the services
// that came, went or changed since any model before it, shares the
// unchanged ones, and is the very model before it when nothing changed.
func TestNextRemembersWhatChanged(t *testing.T) {
	m0 := mustModel(t, svc("a", 1), svc("b", 1), svc("c", 1), svc("e", 1))
	m1 := m0.Next(mustModel(t, svc("a", 1), svc("b", 2), svc("d", 1), svc("e", 1)))
	if got, want := changedSince(t, m1, m0), []string{"b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("m1.ChangedSince(m0) = %q, want %q", got, want)
	}
	a0, _ := m0.Service("a")
	a1, _ := m1.Service("a")
	if &a0.Instances[0] != &a1.Instances[0] {
		t.Error("an unchanged service's instances were not shared with the model before")
	}
	if b1, _ := m1.Service("b"); b1.Instances[0].Port != 2 {
		t.Errorf("b's instance port = %d, want the new model's 2", b1.Instances[0].Port)
	}
	if same := m1.Next(mustModel(t, svc("a", 1), svc("b", 2), svc("d", 1), svc("e", 1))); len(changedSince(t, same, m1)) != 0 || !same.Equal(m1) {
		t.Error("Next without a change did not return the model itself")
	}
	m2 := m1.Next(mustModel(t, svc("a", 1), svc("b", 2), svc("d", 1)))
	if got, want := changedSince(t, m2, m0), []string{"b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("m2.ChangedSince(m0) = %q, want %q", got, want)
	}
	if got, want := changedSince(t, m2, m1), []string{"e"}; !slices.Equal(got, want) {
		t.Errorf("m2.ChangedSince(m1) = %q, want %q", got, want)
	}
	if !m2.Equal(mustModel(t, svc("a", 1), svc("b", 2), svc("d", 1))) {
		t.Error("m2 does not hold the services it was made from")
	}
}

// TestChangedSinceOnlyKnowsItsOwnHistory: models from NewModel, the zero
// Model and models more than history.Max steps back give no answer, and the
// consumer compares every service.
func TestChangedSinceOnlyKnowsItsOwnHistory(t *testing.T) {
	m0 := mustModel(t, svc("a", 1))
	if _, ok := m0.ChangedSince(mustModel(t, svc("a", 1))); ok {
		t.Error("a model knows what changed since an unrelated one")
	}
	if _, ok := m0.ChangedSince(Model{}); ok {
		t.Error("a model knows what changed since the zero Model")
	}
	if got := (Model{}).Next(m0); len(got.Services()) != 1 {
		t.Errorf("the zero Model's Next holds %d services, want 1", len(got.Services()))
	}
	m := m0
	for i := range history.Max {
		m = m.Next(mustModel(t, svc("a", uint32(i+2))))
	}
	if got := changedSince(t, m, m0); !slices.Equal(got, []string{"a"}) {
		t.Errorf("ChangedSince %d models back = %q, want [a]", history.Max, got)
	}
	m = m.Next(mustModel(t, svc("a", 1)))
	if _, ok := m.ChangedSince(m0); ok {
		t.Errorf("a model remembers more than %d models back", history.Max)
	}
}
