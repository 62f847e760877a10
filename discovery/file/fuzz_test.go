package file

import (
	"net/netip"
	"testing"
)

// FuzzParse checks that Parse never panics on operator input, and that what it
// accepts is safe to hand to Envoy: every port in range, every address an IP.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		catalog("a", "b"),
		"services: []\n",
		"services:\n  - name: a\n    instances:\n      - {id: x, address: '::1', port: 65535, version: v1, health: warning}\n",
		"services:\n  - &s {name: a}\n  - *s\n",
		"services: [{name: a, instances: [{id: x, address: 10.0.0.1, port: 0}]}]\n",
		"services:\n  - name: a\n\tinstances: []\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, s := range m.Services() {
			for _, in := range s.Instances {
				if in.Port < 1 || in.Port > 65535 {
					t.Errorf("service %q instance %q: port %d accepted", s.Name, in.ID, in.Port)
				}
				if _, err := netip.ParseAddr(in.Address); err != nil {
					t.Errorf("service %q instance %q: address %q accepted: %v", s.Name, in.ID, in.Address, err)
				}
			}
		}
	})
}
