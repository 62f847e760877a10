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

// digest is the sha256 of a resource's deterministic encoding.
type digest [sha256.Size]byte

// validate runs the own validation (the rules Envoy enforces before it would
// NACK) of every resource not in known, which were validated before, and
// names each resource that fails.
func validate(r Resources, known map[proto.Message]digest) error {
	var errs []error
	for _, e := range entries(r) {
		if _, ok := known[e.msg]; ok {
			continue
		}
		if err := e.msg.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", e.typeURL, e.name, err))
		}
	}
	return errors.Join(errs...)
}

// hash returns the content version of r: sha256 over each resource's type
// URL, name and the digest of its deterministic encoding, in (type URL,
// name) order, so equal resources give an equal version whatever order they
// were built in. Digests of messages in known are reused rather than
// computed again; digests returns every resource's, for the next call.
func hash(r Resources, known map[proto.Message]digest) (version string, digests map[proto.Message]digest, err error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	all := entries(r)
	digests = make(map[proto.Message]digest, len(all))
	var buf []byte
	for _, e := range all {
		d, ok := known[e.msg]
		if !ok {
			buf, err = opts.MarshalAppend(buf[:0], e.msg)
			if err != nil {
				return "", nil, fmt.Errorf("marshal %s %q: %w", e.typeURL, e.name, err)
			}
			d = sha256.Sum256(buf)
		}
		digests[e.msg] = d
		// Length prefixes keep ("ab","c") and ("a","bc") apart.
		for _, field := range [][]byte{[]byte(e.typeURL), []byte(e.name), d[:]} {
			var n [8]byte
			binary.BigEndian.PutUint64(n[:], uint64(len(field)))
			h.Write(n[:])
			h.Write(field)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:versionLen], digests, nil
}
