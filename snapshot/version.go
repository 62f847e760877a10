package snapshot

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
)

// versionLen is how many hex digits of the sha256 the Version keeps: 64 bits
// make an accidental collision between two pushes practically impossible.
const versionLen = 16

// resource is any generated Envoy message: all of them validate themselves.
type resource interface {
	proto.Message
	ValidateAll() error
}

// entry is one resource with the key it is hashed and reported under.
type entry struct {
	typeURL, name string
	msg           resource
}

// entries returns every resource of r sorted by (type URL, name). The sort is
// stable, so sidecar listeners precede API listeners of the same name.
func entries(r Resources) []entry {
	n := len(r.Clusters) + len(r.Endpoints) + len(r.Routes) + len(r.SidecarListeners) + len(r.APIListeners)
	out := make([]entry, 0, n)
	add := func(name string, m resource) {
		out = append(out, entry{typeURL(m), name, m})
	}
	for _, c := range r.Clusters {
		add(c.GetName(), c)
	}
	for _, e := range r.Endpoints {
		add(e.GetClusterName(), e)
	}
	for _, rc := range r.Routes {
		add(rc.GetName(), rc)
	}
	for _, l := range r.SidecarListeners {
		add(l.GetName(), l)
	}
	for _, l := range r.APIListeners {
		add(l.GetName(), l)
	}
	slices.SortStableFunc(out, func(a, b entry) int {
		if c := cmp.Compare(a.typeURL, b.typeURL); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	return out
}

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// validate runs every resource's own validation (the rules Envoy enforces
// before it would NACK) and names each resource that fails.
func validate(r Resources) error {
	var errs []error
	for _, e := range entries(r) {
		if err := e.msg.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", e.typeURL, e.name, err))
		}
	}
	return errors.Join(errs...)
}

// hash returns the content version of r: sha256 over each resource's type URL,
// name and deterministic encoding, in (type URL, name) order, so equal
// resources give an equal version whatever order they were built in.
func hash(r Resources) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for _, e := range entries(r) {
		var err error
		buf, err = opts.MarshalAppend(buf[:0], e.msg)
		if err != nil {
			return "", fmt.Errorf("marshal %s %q: %w", e.typeURL, e.name, err)
		}
		// Length prefixes keep ("ab","c") and ("a","bc") apart.
		for _, field := range [][]byte{[]byte(e.typeURL), []byte(e.name), buf} {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(field)))
			h.Write(n[:])
			h.Write(field)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:versionLen], nil
}
