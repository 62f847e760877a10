package snapshot

import (
	"cmp"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"weak"
)

// TestListIsASliceThatSharesItsPast checks List against a slice at lengths
// around each level's width: every version reads as the slice it stands
// for, an earlier version is untouched by a later Set, and Changed names
// exactly the indexes whose items differ.
func TestListIsASliceThatSharesItsPast(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 31, 32, 33, 1023, 1024, 1025, 33000} {
		want := make([]int, n)
		for i := range want {
			want[i] = i * 3
		}
		l := ListOf(want...)
		if n > 0 {
			want[0] = -7 // ListOf copied want: the list still holds 0
			if l.At(0) != 0 {
				t.Fatalf("n=%d: ListOf shares its argument", n)
			}
			want[0] = 0
		}
		checkList(t, l, want)
		for range min(n, 40) {
			prev, prevWant := l, slices.Clone(want)
			at := make(map[int]bool)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(n)
				l = l.Set(i, -i-1)
				want[i] = -i - 1
				at[i] = true
			}
			checkList(t, l, want)
			checkList(t, prev, prevWant)
			changes, ok := Changed(l, prev)
			if !ok {
				t.Fatalf("n=%d: Changed between lists of one length could not tell", n)
			}
			var wantChanges []int
			for i := range at {
				if want[i] != prevWant[i] {
					wantChanges = append(wantChanges, i)
				}
			}
			slices.Sort(wantChanges)
			if got := slices.Collect(changes); !slices.Equal(got, wantChanges) {
				t.Fatalf("n=%d: Changed = %v, want %v", n, got, wantChanges)
			}
		}
	}
}

func checkList(t *testing.T, l List[int], want []int) {
	t.Helper()
	if l.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", l.Len(), len(want))
	}
	if got := l.Slice(); !slices.Equal(got, want) {
		t.Fatalf("Slice differs from the slice it stands for at %d items", len(want))
	}
	for i, w := range want {
		if got := l.At(i); got != w {
			t.Fatalf("At(%d) = %d, want %d", i, got, w)
		}
	}
}

func TestListSameAndChangedAcrossLengths(t *testing.T) {
	a := ListOf(1, 2, 3)
	if !a.Same(a) || a.Same(ListOf(1, 2, 3)) {
		t.Error("Same should hold for one version only")
	}
	if b := a.Set(1, 2); a.Same(b) {
		t.Error("Set made the same version")
	}
	if _, ok := Changed(ListOf(1, 2), a); ok {
		t.Error("Changed told lists of different lengths apart")
	}
	if changes, ok := Changed(List[int]{}, List[int]{}); !ok || len(slices.Collect(changes)) != 0 {
		t.Error("two empty lists should have nothing changed")
	}
}

func TestListSetSharesAllButItsPath(t *testing.T) {
	l := ListOf(make([]int, 33000)...)
	m := l.Set(20000, 1)
	shared := 0
	for k := range l.root.kids {
		if l.root.kids[k] == m.root.kids[k] {
			shared++
		}
	}
	if want := len(l.root.kids) - 1; shared != want {
		t.Errorf("%d of the root's %d branches shared, want %d", shared, len(l.root.kids), want)
	}
}

func TestListSearchFindsByKey(t *testing.T) {
	l := ListOf(2, 4, 6, 8)
	for target, want := range map[int]struct {
		at    int
		found bool
	}{1: {0, false}, 2: {0, true}, 5: {2, false}, 8: {3, true}, 9: {4, false}} {
		at, found := search(l, target, cmp.Compare[int])
		if at != want.at || found != want.found {
			t.Errorf("search(%d) = %d, %v; want %d, %v", target, at, found, want.at, want.found)
		}
	}
}

func TestListAtPanicsOutOfRange(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("At(3) of three items did not panic")
		}
	}()
	ListOf(1, 2, 3).At(3)
}

func BenchmarkListSet(b *testing.B) {
	l := ListOf(make([]*int, 20000)...)
	v := new(int)
	i := 0
	for b.Loop() {
		i = (i + 7919) % l.Len()
		l = l.Set(i, v)
	}
}

// appended returns l with ms after its items.
func appended[M any](l List[M], ms ...M) List[M] { return ListOf(append(l.Slice(), ms...)...) }

// TestListLetsGoOfReplacedItems checks that an item Set replaced, in a list
// made by ListOf, can be collected once no version holds it: a Builder's
// lists replace a rebuilt service's resources, and the old ones, with the
// instances they were built from, must not stay in memory.
func TestListLetsGoOfReplacedItems(t *testing.T) {
	items := make([]*[64]byte, 2000)
	for i := range items {
		items[i] = new([64]byte)
	}
	old := weak.Make(items[5])
	l := ListOf(items...).Set(5, new([64]byte))
	items = nil
	runtime.GC()
	if old.Value() != nil {
		t.Error("the item Set replaced is still reachable")
	}
	runtime.KeepAlive(l)
}
