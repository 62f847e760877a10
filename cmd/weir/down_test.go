package main

import (
	"cmp"
	"context"
	"fmt"
	"testing"
	"time"
)

// greeterHealth is greeterV1V2 with the health of v1's instances given
// too.
const greeterHealth = `services:
  - name: greeter
    instances:
      - {id: greeter-v1-a, address: 127.0.0.1, port: %d, version: v1, health: %s}
      - {id: greeter-v1-b, address: 127.0.0.1, port: %d, version: v1, health: %s}
      - {id: greeter-v2-a, address: 127.0.0.1, port: %d, version: v2, health: %s}
      - {id: greeter-v2-b, address: 127.0.0.1, port: %d, version: v2, health: %s}
`

// writeHealth rewrites the catalog with the health of each version's
// instances.
func (env *rolloutEnv) writeHealth(t *testing.T, v1, v2 string) {
	t.Helper()
	writeFile(t, env.catalog, fmt.Sprintf(greeterHealth, env.ports["greeter-v1-a"], v1, env.ports["greeter-v1-b"], v1,
		env.ports["greeter-v2-a"], v2, env.ports["greeter-v2-b"], v2))
}

// TestEndToEndBridgeSkipsADownVersion swaps which of greeter's versions
// serves in one catalog edit, while a proxy that never ACKs holds weir's
// make-before-break bridge in place: v1, the only version serving, has
// all of fixed {v1: 0, v2: 100}'s traffic while v2 is critical; then v1
// goes critical as v2 passes. v2 was never routed: weir serves a bridge,
// which keeps v1's endpoints for proxies still on its routes, and which
// the stalled proxy keeps in place for --ack-timeout. No call may go to
// v1 meanwhile (its backends still answer, telling where calls went).
func TestEndToEndBridgeSkipsADownVersion(t *testing.T) {
	env := rolloutFiles(t, greeterPolicy("0", "100"))
	env.writeHealth(t, "passing", "critical")
	env.start(t)
	env.flow(t)
	until(t, "the client to hold v1's routes", env.holdsAll)
	if share := env.share(t, 20); share != 0 {
		t.Fatalf("v2 took %.0f %% of the calls while critical, want none", share)
	}
	silentProxy(t, env.w.xdsAddr, "stalled-proxy")
	until(t, "the stalled proxy to subscribe", func() bool { return len(routesFetched(env.w, "stalled-proxy")) > 0 })

	before := env.w.srv.publisher.Status().Version
	env.writeHealth(t, "critical", "passing")
	until(t, "the client to hold a bridge", func() bool {
		return env.w.srv.publisher.Status().Version != before && !env.w.srv.publisher.ServingTarget() && env.holdsAll()
	})
	// The client ACKs routes before its channel uses them: a call or two
	// may go by the old ones. The bridge holds for --ack-timeout (10 s).
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Second)
	elsewhere := map[string]int{}
	for r := env.c.call(ctx); r.version != "v2"; r = env.c.call(ctx) {
		if elsewhere[cmp.Or(r.version, "failed")]++; time.Now().After(deadline) {
			t.Fatalf("in 2 s after the client held the bridge, calls went %v, none to v2 (v1 is critical)", elsewhere)
		}
	}
	if share := env.share(t, 100); share != 100 {
		t.Errorf("v2 took %.0f %% of the calls once v1 went critical, want all of them", share)
	}
}
