package policy

import "testing"

// FuzzParseFile checks that ParseFile never panics on operator input, and that
// a policy it accepts is one the rollout engine can run (see checkAccepted).
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		fixed("greeter", "{v1: 90, v2: 10}"),
		fixed("greeter", "{v1: 99.99, v2: 0.01}"),
		fixed("greeter", "{v1: \"87.5\", v2: 12.5}"),
		fixed("greeter", "{v1: 90, v2: -10}"),
		"service: greeter\nstrategy: canary\n",
		"service: greeter\nstrategy: fixed\nweights:\n  v1: 100\n  v1: 0\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			return
		}
		checkAccepted(t, p)
	})
}
