package snapshot

import (
	"iter"
	"slices"
)

// List is an immutable list that a new version shares with the old: Set
// copies only the path from the root to the changed item, a few dozen
// pointers whatever the length, and Changed finds what differs between two
// versions by skipping the parts they share. A snapshot's lists are Lists
// so that a change to one service costs what that service's resources
// cost, not a copy of every list. Its zero value is the empty list.
type List[M any] struct {
	root   *listNode[M]
	length int
	depth  int // levels of branches above the leaves
}

// listNode is a branch, with kids, or a leaf, with items: at most
// listWidth of either.
type listNode[M any] struct {
	kids  []*listNode[M]
	items []M
}

const (
	listBits  = 5
	listWidth = 1 << listBits
	listMask  = listWidth - 1
)

// ListOf returns a List of items, which it copies. Each node gets an
// array of its own: nodes cut from one array would keep an item that Set
// replaced reachable through the nodes that share the array.
func ListOf[M any](items ...M) List[M] {
	if len(items) == 0 {
		return List[M]{}
	}
	level := make([]*listNode[M], 0, (len(items)+listMask)/listWidth)
	for i := 0; i < len(items); i += listWidth {
		level = append(level, &listNode[M]{items: slices.Clone(items[i:min(i+listWidth, len(items))])})
	}
	depth := 0
	for len(level) > 1 {
		up := make([]*listNode[M], 0, (len(level)+listMask)/listWidth)
		for i := 0; i < len(level); i += listWidth {
			up = append(up, &listNode[M]{kids: slices.Clone(level[i:min(i+listWidth, len(level))])})
		}
		level, depth = up, depth+1
	}
	return List[M]{root: level[0], length: len(items), depth: depth}
}

// Len returns how many items l holds.
func (l List[M]) Len() int { return l.length }

// At returns the i-th item; it panics if i is out of range.
func (l List[M]) At(i int) M {
	if uint(i) >= uint(l.length) {
		panic("snapshot: List index out of range")
	}
	n := l.root
	for shift := l.depth * listBits; shift > 0; shift -= listBits {
		n = n.kids[i>>shift&listMask]
	}
	return n.items[i&listMask]
}

// Set returns l with m as its i-th item; l is unchanged. It panics if i is
// out of range.
func (l List[M]) Set(i int, m M) List[M] {
	if uint(i) >= uint(l.length) {
		panic("snapshot: List index out of range")
	}
	l.root = l.root.with(i, l.depth*listBits, m)
	return l
}

// with returns a copy of n, on the level shift bits above the leaves, with
// m as its i-th item.
func (n *listNode[M]) with(i, shift int, m M) *listNode[M] {
	if shift == 0 {
		items := slices.Clone(n.items)
		items[i&listMask] = m
		return &listNode[M]{items: items}
	}
	kids := slices.Clone(n.kids)
	k := i >> shift & listMask
	kids[k] = kids[k].with(i, shift-listBits, m)
	return &listNode[M]{kids: kids}
}

// All yields each index and item, in order.
func (l List[M]) All() iter.Seq2[int, M] {
	return func(yield func(int, M) bool) {
		if l.root != nil {
			l.root.all(0, l.depth*listBits, yield)
		}
	}
}

// all yields the items under n, the first of which is at index first; it
// reports false once yield has.
func (n *listNode[M]) all(first, shift int, yield func(int, M) bool) bool {
	if shift == 0 {
		for i, m := range n.items {
			if !yield(first+i, m) {
				return false
			}
		}
		return true
	}
	for k, kid := range n.kids {
		if !kid.all(first+k<<shift, shift-listBits, yield) {
			return false
		}
	}
	return true
}

// Values yields each item, in order.
func (l List[M]) Values() iter.Seq[M] {
	return func(yield func(M) bool) {
		for _, m := range l.All() {
			if !yield(m) {
				return
			}
		}
	}
}

// Slice returns l's items in a new slice.
func (l List[M]) Slice() []M {
	s := make([]M, 0, l.length)
	for _, m := range l.All() {
		s = append(s, m)
	}
	return s
}

// Same reports whether l and o are the same version of a list: then they
// hold the same items. Lists with the same items made apart are not the
// same.
func (l List[M]) Same(o List[M]) bool { return l.root == o.root && l.length == o.length }

// Changed yields, in order, the indexes at which l's item differs from
// prev's, visiting only the parts of l not shared with prev; it reports
// false, yielding nothing, when l and prev differ in length, which moves
// items rather than changing them.
func Changed[M comparable](l, prev List[M]) (iter.Seq[int], bool) {
	if l.length != prev.length {
		return nil, false
	}
	return func(yield func(int) bool) {
		if l.root != nil {
			changed(l.root, prev.root, 0, l.depth*listBits, yield)
		}
	}, true
}

// changed yields the indexes at which the items under n and under prev,
// the nodes of two lists of one length at the same place, differ; it
// reports false once yield has.
func changed[M comparable](n, prev *listNode[M], first, shift int, yield func(int) bool) bool {
	if n == prev {
		return true
	}
	if shift == 0 {
		for i, m := range n.items {
			if m != prev.items[i] && !yield(first+i) {
				return false
			}
		}
		return true
	}
	for k, kid := range n.kids {
		if !changed(kid, prev.kids[k], first+k<<shift, shift-listBits, yield) {
			return false
		}
	}
	return true
}

// search returns the index of the first item of l, sorted by key, whose key
// is not below target, and whether its key is target.
func search[M any, K any](l List[M], target K, compare func(M, K) int) (int, bool) {
	lo, hi := 0, l.length
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if compare(l.At(mid), target) < 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < l.length && compare(l.At(lo), target) == 0
}

// changedFrom yields the indexes of l whose items may differ from prev's
// at the same index: Changed's when l and prev have one length, else
// every index.
func changedFrom[M comparable](l, prev List[M]) iter.Seq[int] {
	if changes, ok := Changed(l, prev); ok {
		return changes
	}
	return func(yield func(int) bool) {
		for i := range l.Len() {
			if !yield(i) {
				return
			}
		}
	}
}
