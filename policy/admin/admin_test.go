package admin

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

func TestListAndGetRollouts(t *testing.T) {
	env := newEnv(t, Config{})
	resp, err := env.client.ListRollouts(ctx(t), &adminv1.ListRolloutsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Rollouts) != 2 || resp.Rollouts[0].Service != "catalog" || resp.Rollouts[1].Service != "greeter" {
		t.Fatalf("ListRollouts = %v, want catalog and greeter", resp.Rollouts)
	}
	fixed, canary := resp.Rollouts[0], resp.Rollouts[1]
	if fixed.Strategy != "fixed" || fixed.Phase != "" || !maps.Equal(fixed.Weights, map[string]uint32{"v1": 9000, "v2": 1000}) {
		t.Errorf("catalog = %v, want fixed 90/10 without a phase", fixed)
	}
	if canary.Strategy != "canary" || canary.Phase != "progressing" || canary.OldVersion != "v1" || canary.NewVersion != "v2" ||
		!maps.Equal(canary.Weights, map[string]uint32{"v1": 8000, "v2": 2000}) || canary.Override != nil {
		t.Errorf("greeter = %v, want a canary progressing at v2=20", canary)
	}
	if !maps.Equal(canary.HealthyEndpoints, map[string]uint32{"v1": 1, "v2": 1}) || canary.AppliedFraction != 1 ||
		canary.TimeInStep.AsDuration().Minutes() != 1 || len(canary.Events) != 1 || canary.Events[0].Kind != "started" {
		t.Errorf("greeter = %v, want 1 healthy endpoint per version, fraction 1, a minute in step, the start event", canary)
	}
	got, err := env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "greeter"})
	if err != nil || got.Strategy != "canary" {
		t.Errorf("GetRollout(greeter) = %v, %v", got, err)
	}
	_, err = env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "nope"})
	wantCode(t, "GetRollout(nope)", err, codes.NotFound, `service "nope" has no policy (services with one: catalog, greeter)`)
}

func TestSetWeightsOnRollout(t *testing.T) {
	env := newEnv(t, Config{})
	r, err := env.client.SetWeights(ctx(t), &adminv1.SetWeightsRequest{Service: "greeter",
		Weights: map[string]string{"v1": "62.5", "v2": "37.5"}, Reason: "more canary"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{"v1": 6250, "v2": 3750}
	if !maps.Equal(r.Weights, want) || r.Override == nil || r.Override.By != "alice" || r.Override.Reason != "more canary" {
		t.Errorf("after SetWeights: %v, want weights %v overridden by alice", r, want)
	}
	if got := env.engine.Routing().Map()["greeter"].Weights; got.String() != "v1=62.5 v2=37.5" {
		t.Errorf("engine routes %s", got)
	}
	last := r.Events[len(r.Events)-1]
	if last.Kind != "weights-set" || last.By != "alice" {
		t.Errorf("last event %v, want weights-set by alice", last)
	}
}

func TestSetWeightsErrors(t *testing.T) {
	env := newEnv(t, Config{})
	before := env.engine.Routing()
	for _, tt := range []struct {
		service string
		weights map[string]string
		code    codes.Code
		msg     string
	}{
		{"nope", map[string]string{"v1": "100"}, codes.NotFound, `service "nope" has no policy`},
		{"greeter", nil, codes.InvalidArgument, "weights: none given"},
		{"greeter", map[string]string{"v1": "90", "v2": "5"}, codes.InvalidArgument, "weights: sum to 95, must be 100"},
		{"greeter", map[string]string{"v1": "110", "v2": "-10"}, codes.InvalidArgument, `weights["v1"]: weight "110" is not a percentage between 0 and 100`},
		{"greeter", map[string]string{"v1": "100", "v2": "-0"}, codes.InvalidArgument, `weights["v2"]: weight "-0" is negative`},
		{"greeter", map[string]string{"v1": "ninety", "v2": "10"}, codes.InvalidArgument, `weights["v1"]: weight "ninety" is not a percentage`},
		{"greeter", map[string]string{"v1": "50", "v3": "50"}, codes.InvalidArgument, `weights["v3"]: version v3 is not part of the rollout (v1 → v2)`},
		{"catalog", map[string]string{"v1": "50", "v3": "50"}, codes.InvalidArgument, `weights["v3"]: version v3 has no healthy endpoints (healthy: v1=1 v2=1)`},
	} {
		_, err := env.client.SetWeights(ctx(t), &adminv1.SetWeightsRequest{Service: tt.service, Weights: tt.weights, Reason: "x"})
		wantCode(t, tt.service+" "+policy.Weights{}.String(), err, tt.code, tt.msg)
	}
	if after := env.engine.Routing(); !routingEqual(before.Map(), after.Map()) {
		t.Errorf("refused calls changed routing: %v → %v", before, after)
	}
}

func routingEqual(a, b map[string]policy.Routing) bool {
	return maps.EqualFunc(a, b, func(x, y policy.Routing) bool { return x.Weights.String() == y.Weights.String() })
}

func TestSetWeightsOnFixedPolicyLastsUntilItsFileChanges(t *testing.T) {
	env := newEnv(t, Config{})
	r, err := env.client.SetWeights(ctx(t), &adminv1.SetWeightsRequest{Service: "catalog",
		Weights: map[string]string{"v1": "70", "v2": "30", "v3": "0"}, Reason: "drain"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Override == nil || r.Override.By != "alice" || r.Weights["v1"] != 7000 {
		t.Fatalf("after SetWeights: %v, want a 70/30 override by alice", r)
	}
	if got := env.engine.Routing().Map()["catalog"].Weights.String(); got != "v1=70 v2=30 v3=0" {
		t.Errorf("engine routes catalog %s", got)
	}
	same := map[string]string{"greeter.yaml": canaryFile, "catalog.yaml": fixedFile("90", "10")}
	env.engine.SetPolicies(testSet(t, same))
	if _, ok := env.engine.FixedOverride("catalog"); !ok {
		t.Fatal("the same policy read again ended the override")
	}
	same["catalog.yaml"] = fixedFile("80", "20")
	env.engine.SetPolicies(testSet(t, same))
	r, err = env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "catalog"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Override != nil || r.Weights["v1"] != 8000 || r.Events[len(r.Events)-1].Kind != "override-cleared" {
		t.Errorf("after the policy changed: %v, want the file's 80/20 and the override cleared", r)
	}
}

func TestOperations(t *testing.T) {
	env := newEnv(t, Config{})
	op := func(name string, f func(*adminv1.OperationRequest) (*adminv1.Rollout, error), service string, code codes.Code, msg string) *adminv1.Rollout {
		t.Helper()
		r, err := f(&adminv1.OperationRequest{Service: service, Reason: "test " + name})
		wantCode(t, name+" "+service, err, code, msg)
		return r
	}
	c := env.client
	promote := func(r *adminv1.OperationRequest) (*adminv1.Rollout, error) { return c.Promote(ctx(t), r) }
	pause := func(r *adminv1.OperationRequest) (*adminv1.Rollout, error) { return c.Pause(ctx(t), r) }
	resume := func(r *adminv1.OperationRequest) (*adminv1.Rollout, error) { return c.Resume(ctx(t), r) }
	abort := func(r *adminv1.OperationRequest) (*adminv1.Rollout, error) { return c.Abort(ctx(t), r) }
	rollback := func(r *adminv1.OperationRequest) (*adminv1.Rollout, error) { return c.Rollback(ctx(t), r) }

	for name, f := range map[string]func(*adminv1.OperationRequest) (*adminv1.Rollout, error){
		"promote": promote, "pause": pause, "resume": resume, "abort": abort, "rollback": rollback} {
		op(name, f, "nope", codes.NotFound, `service "nope" has no policy`)
		op(name, f, "catalog", codes.FailedPrecondition, "no rollout in progress")
	}
	op("resume", resume, "greeter", codes.FailedPrecondition, "rollout is not paused")
	if r := op("pause", pause, "greeter", codes.OK, ""); r.GetPhase() != "paused" || r.Reason != "paused by alice: test pause" {
		t.Errorf("after pause: %v", r)
	}
	op("pause", pause, "greeter", codes.FailedPrecondition, "no rollout in progress")
	if r := op("resume", resume, "greeter", codes.OK, ""); r.GetPhase() != "progressing" {
		t.Errorf("after resume: %v", r)
	}
	op("rollback", rollback, "greeter", codes.FailedPrecondition, "rollback is only possible within a blue-green rollback window")
	if r := op("promote", promote, "greeter", codes.OK, ""); r.GetPhase() != "promoted" || r.Weights["v2"] != 10000 {
		t.Errorf("after promote: %v", r)
	}
	op("promote", promote, "greeter", codes.FailedPrecondition, "no rollout in progress")
	if r := op("abort", abort, "greeter", codes.OK, ""); r.GetPhase() != "aborted" || r.Weights["v1"] != 10000 {
		t.Errorf("after abort: %v", r)
	}
	op("abort", abort, "greeter", codes.FailedPrecondition, "no rollout in progress")
	_, err := c.SetWeights(ctx(t), &adminv1.SetWeightsRequest{Service: "greeter", Weights: map[string]string{"v1": "50", "v2": "50"}, Reason: "after abort"})
	wantCode(t, "SetWeights after abort", err, codes.FailedPrecondition, "no rollout in progress")

	events, err := c.ListEvents(ctx(t), &adminv1.ListEventsRequest{Service: "greeter", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events.Events {
		kinds = append(kinds, e.Kind+"/"+e.By)
	}
	if want := []string{"resumed/alice", "promoted/alice", "aborted/alice"}; !equal(kinds, want) {
		t.Errorf("ListEvents = %v, want %v", kinds, want)
	}
	all, err := c.ListEvents(ctx(t), &adminv1.ListEventsRequest{})
	if err != nil || len(all.Events) != 5 {
		t.Errorf("ListEvents() = %d events, %v; want 5: the start and 4 operations", len(all.GetEvents()), err)
	}
	_, err = c.ListEvents(ctx(t), &adminv1.ListEventsRequest{Service: "greter"})
	wantCode(t, "ListEvents of a service with no policy", err, codes.NotFound, `service "greter" has no policy (services with one: `)

	retry := func(r *adminv1.OperationRequest) (*adminv1.Rollout, error) { return c.Retry(ctx(t), r) }
	op("retry", retry, "nope", codes.NotFound, `service "nope" has no policy`)
	op("retry", retry, "catalog", codes.FailedPrecondition, "no rollout in progress")
	if r := op("retry", retry, "greeter", codes.OK, ""); r.GetPhase() != "progressing" || r.Weights["v2"] != 2000 {
		t.Errorf("after retry: %v, want progressing at the first step, v2 at 20 %%", r)
	}
	op("retry", retry, "greeter", codes.FailedPrecondition, "only an aborted or rolled back rollout can be retried (it is progressing)")
}

// TestOperationsExpectingAVersion checks that an operation that names the
// version the operator expects the rollout to move to is refused, and
// changes nothing, when the rollout moves to another, and done when it
// moves to that one.
func TestOperationsExpectingAVersion(t *testing.T) {
	env := newEnv(t, Config{})
	_, err := env.client.Promote(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: "v3 looks good", ExpectVersion: "v3"})
	wantCode(t, "promote expecting v3", err, codes.FailedPrecondition,
		"the rollout moves traffic to another version: greeter's canary rollout is v1 → v2, not to v3 (a policy change may have replaced the one you looked at): nothing was done")
	r, err := env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "greeter"})
	if err != nil || r.GetPhase() != "progressing" {
		t.Fatalf("after the refused promote: %v, %v; want still progressing", r, err)
	}
	r, err = env.client.Promote(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: "v2 looks good", ExpectVersion: "v2"})
	if err != nil || r.GetPhase() != "promoted" {
		t.Fatalf("promote expecting v2: %v, %v; want promoted", r, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWatchRollouts(t *testing.T) {
	env := newEnv(t, Config{})
	stream, err := env.client.WatchRollouts(ctx(t), &adminv1.WatchRolloutsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Rollouts) != 2 || len(first.Events) != 1 {
		t.Fatalf("first update: %d rollouts and %d events, want 2 and 1", len(first.Rollouts), len(first.Events))
	}
	if _, err := env.client.Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: "look"}); err != nil {
		t.Fatal(err)
	}
	// The watch reads rollouts and events one after the other, so a pause
	// between the two reads shows in one update and its event in the next.
	var paused, journaled bool
	for range 2 {
		next, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		paused = paused || next.Rollouts[1].Phase == "paused"
		for _, ev := range next.Events {
			if ev.Kind != "paused" || ev.By != "alice" {
				t.Errorf("update after pause has event %v, want alice's pause", ev)
			}
			journaled = true
		}
		if paused && journaled {
			return
		}
	}
	t.Errorf("two updates after a pause: paused rollout %v, pause event %v; want both", paused, journaled)
}

func TestUnauthenticatedCallsRefused(t *testing.T) {
	env := newEnv(t, Config{})
	for name, token := range map[string]string{"no token": "", "bad token": "secret-b", "prefix of the token": "secret"} {
		c := dial(t, env.addr, token)
		_, err := c.ListRollouts(ctx(t), &adminv1.ListRolloutsRequest{})
		wantCode(t, name, err, codes.Unauthenticated, "")
		_, err = c.Abort(ctx(t), &adminv1.OperationRequest{Service: "greeter"})
		wantCode(t, name+" abort", err, codes.Unauthenticated, "")
		stream, err := c.WatchRollouts(ctx(t), &adminv1.WatchRolloutsRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, name+" watch", err, codes.Unauthenticated, "")
	}
	if r := env.engine.Rollouts()[0]; r.Phase != policy.Progressing {
		t.Errorf("a refused abort changed the rollout: %s", r.Phase)
	}
	// Health checks need no credentials.
	hc := healthClient(t, env.addr)
	resp, err := hc.Check(ctx(t), &healthpb.HealthCheckRequest{Service: adminv1.AdminService_ServiceDesc.ServiceName})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check: %v, %v", resp, err)
	}
}

func TestNoCredentialsConfiguredRefusesAll(t *testing.T) {
	addr := testServer(t, NewServer(Config{Engine: testEngine(t)}), Auth{}, nil)
	_, err := dial(t, addr, "anything").ListRollouts(ctx(t), &adminv1.ListRolloutsRequest{})
	wantCode(t, "token without configured tokens", err, codes.Unauthenticated, "")
	_, err = dial(t, addr, "").ListRollouts(ctx(t), &adminv1.ListRolloutsRequest{})
	wantCode(t, "no credentials", err, codes.Unauthenticated, "--admin-token-file")
}

func TestParseTokens(t *testing.T) {
	toks, err := ParseTokens("f", []byte("# comment\n\nalice: s1\ns2\n"))
	if err != nil {
		t.Fatal(err)
	}
	// sha256("s2") starts 5e4... — the identity names a digest, never the token.
	if len(toks) != 2 || toks[0].Name != "alice" || toks[1].Name[:6] != "token-" || len(toks[1].Name) != 12 {
		t.Errorf("tokens = %v", toks)
	}
	for in, want := range map[string]string{
		"":             "f: no tokens",
		"a:\n":         "f:1: empty token",
		":tok\n":       "f:1: empty name",
		"x\n#\nx\n":    "f:3: the same token as line 1",
		"a:x\nb:x\n":   "f:2: the same token as line 1",
		"\n\n  \n# \n": "f: no tokens",
	} {
		if _, err := ParseTokens("f", []byte(in)); err == nil || !contains(err.Error(), want) {
			t.Errorf("ParseTokens(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestOperationsNeedAReason(t *testing.T) {
	env := newEnv(t, Config{})
	_, err := env.client.Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter"})
	wantCode(t, "Pause without a reason", err, codes.InvalidArgument, "reason: required")
	_, err = env.client.SetWeights(ctx(t), &adminv1.SetWeightsRequest{Service: "greeter", Weights: map[string]string{"v1": "50", "v2": "50"}})
	wantCode(t, "SetWeights without a reason", err, codes.InvalidArgument, "reason: required")
	// Nothing to read: a zero-width space.
	_, err = env.client.Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: "\u200b "})
	wantCode(t, "Pause with an invisible reason", err, codes.InvalidArgument, "reason: required")
	// Too long: a reason comes back with every view of the rollout, and a
	// pasted log once made those too large for a client to receive.
	_, err = env.client.Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: strings.Repeat("x", maxReason+1)})
	wantCode(t, "Pause with a long reason", err, codes.InvalidArgument, "reason: 1025 bytes, at most 1024")
	if r, err := env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "greeter"}); err != nil || r.GetPhase() == string(policy.Paused) {
		t.Errorf("after refused pauses: %v, phase %q; want the rollout untouched", err, r.GetPhase())
	}
	if _, err := env.client.Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: strings.Repeat("x", maxReason)}); err != nil {
		t.Errorf("Pause with a reason of %d bytes: %v", maxReason, err)
	}
}

func TestFrozenServicesAreListed(t *testing.T) {
	env := newEnv(t, Config{})
	// greeter's policy file goes away mid-canary: its weights freeze.
	env.engine.SetPolicies(testSet(t, map[string]string{"catalog.yaml": fixedFile("90", "10")}))
	r, err := env.client.GetRollout(ctx(t), &adminv1.GetRolloutRequest{Service: "greeter"})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetStrategy() != "frozen" || r.GetWeights()["v1"]+r.GetWeights()["v2"] != 10000 || !contains(r.GetReason(), "frozen") {
		t.Fatalf("frozen greeter: %v", r)
	}
	list, err := env.client.ListRollouts(ctx(t), &adminv1.ListRolloutsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetRollouts()) != 2 {
		t.Errorf("ListRollouts lists %d services, want catalog and the frozen greeter", len(list.GetRollouts()))
	}
}

// TestOperationsOnAFrozenService checks that set-weights and the rollout
// operations on a service whose policy file was deleted mid-rollout are
// refused as not applying to it (FailedPrecondition, weir ctl's exit 4),
// saying that its weights are frozen and how to change them, and change
// nothing. Set-weights was refused as NotFound, for a service that
// ListRollouts lists, saying it "has no fixed policy".
func TestOperationsOnAFrozenService(t *testing.T) {
	env := newEnv(t, Config{})
	env.engine.SetPolicies(testSet(t, map[string]string{"catalog.yaml": fixedFile("90", "10")}))
	before := env.engine.Routing().Map()
	const frozen = "greeter's policy file was deleted mid-rollout: its weights stay frozen at v1=80 v2=20 until a policy file for greeter appears"
	_, err := env.client.SetWeights(ctx(t), &adminv1.SetWeightsRequest{Service: "greeter",
		Weights: map[string]string{"v1": "100", "v2": "0"}, Reason: "v2 errors"})
	wantCode(t, "SetWeights on frozen greeter", err, codes.FailedPrecondition, frozen)
	_, err = env.client.Abort(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: "v2 errors"})
	wantCode(t, "Abort on frozen greeter", err, codes.FailedPrecondition, frozen)
	if after := env.engine.Routing().Map(); !routingEqual(before, after) {
		t.Errorf("refused calls changed routing: %v → %v", before, after)
	}
}

// TestStatusOfNamesTheCode checks the gRPC code of each engine error,
// wrapped as the engine wraps it: an operation that could not be saved is
// Aborted, which tells a client to retry and, unlike Unavailable, cannot be
// taken for weir being out of reach.
func TestStatusOfNamesTheCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{policy.ErrBadWeights, codes.InvalidArgument},
		{policy.ErrNotInProgress, codes.FailedPrecondition},
		{policy.ErrNotPaused, codes.FailedPrecondition},
		{policy.ErrNoRollback, codes.FailedPrecondition},
		{policy.ErrOtherVersion, codes.FailedPrecondition},
		{policy.ErrNotAborted, codes.FailedPrecondition},
		{policy.ErrNoPolicy, codes.NotFound},
		{policy.ErrNotSaved, codes.Aborted},
		{errors.New("anything else"), codes.Internal},
	} {
		err := statusOf(fmt.Errorf("greeter: %w", tc.err))
		if got := status.Code(err); got != tc.want {
			t.Errorf("statusOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
