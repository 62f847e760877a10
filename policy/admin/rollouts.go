package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// eventsPerRollout is how many of its latest events a Rollout carries.
const eventsPerRollout = 5

// ListRollouts implements adminv1.AdminServiceServer.
func (s *Server) ListRollouts(context.Context, *adminv1.ListRolloutsRequest) (*adminv1.ListRolloutsResponse, error) {
	return &adminv1.ListRolloutsResponse{Rollouts: s.rollouts()}, nil
}

// GetRollout implements adminv1.AdminServiceServer.
func (s *Server) GetRollout(_ context.Context, req *adminv1.GetRolloutRequest) (*adminv1.Rollout, error) {
	return s.rollout(req.GetService())
}

// rollouts returns every service with a policy, sorted by service.
func (s *Server) rollouts() []*adminv1.Rollout {
	v := s.view()
	out := make([]*adminv1.Rollout, 0, len(v.services))
	for _, svc := range v.services {
		out = append(out, s.render(v, svc))
	}
	return out
}

// rollout returns one service's rollout, or NotFound.
func (s *Server) rollout(service string) (*adminv1.Rollout, error) {
	v := s.view()
	if !slices.Contains(v.services, service) {
		return nil, notFound(service, v.services)
	}
	return s.render(v, service), nil
}

func notFound(service string, known []string) error {
	if service == "" {
		return status.Error(codes.InvalidArgument, "service: required")
	}
	return status.Errorf(codes.NotFound, "service %q has no policy (services with one: %s)", service, orNone(known))
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

// frozenStrategy is what a service with frozen weights shows as its
// strategy.
const frozenStrategy = "frozen"

// view is one consistent-enough reading of the engine for rendering.
type view struct {
	policies policy.Set
	services []string // with a policy or frozen weights, sorted
	frozen   map[string]policy.Weights
	rollouts map[string]policy.Rollout
	events   []policy.Event
	fraction float64
}

func (s *Server) view() view {
	e := s.cfg.Engine
	v := view{policies: e.Policies(), rollouts: map[string]policy.Rollout{}, events: e.Events(), fraction: s.appliedFraction(),
		frozen: e.Frozen()}
	v.services = v.policies.Services()
	for svc := range v.frozen {
		if !slices.Contains(v.services, svc) {
			v.services = append(v.services, svc)
		}
	}
	slices.Sort(v.services)
	for _, r := range e.Rollouts() {
		v.rollouts[r.Service] = r
	}
	return v
}

// render turns service's state into its API form.
func (s *Server) render(v view, service string) *adminv1.Rollout {
	e := s.cfg.Engine
	out := &adminv1.Rollout{Service: service, AppliedFraction: v.fraction, Applied: e.RoutingApplied(service),
		HealthyEndpoints: counts(e.Serving(service))}
	if r, ok := v.rollouts[service]; ok {
		out.Strategy, out.Phase, out.Reason = string(r.Strategy), string(r.Phase), r.Reason
		out.Step, out.OldVersion, out.NewVersion = int32(r.Step), r.Old, r.New
		out.Weights = weights(r.Weights())
		out.Override = override(r.Override)
		out.StepSince = timestamppb.New(r.StepSince)
		out.TimeInStep = durationpb.New(s.cfg.Clock().Sub(r.StepSince))
	} else if w, ok := v.frozen[service]; ok {
		out.Strategy, out.Weights = frozenStrategy, weights(w)
		out.Reason = "policy file deleted mid-rollout; weights frozen until a policy appears"
	} else {
		p, _ := v.policies.Get(service)
		out.Strategy, out.Weights = string(p.Strategy), weights(p.Weights)
		if o, ok := e.FixedOverride(service); ok {
			out.Weights, out.Override = weights(o.Weights), override(&o)
		}
	}
	for _, ev := range slices.Backward(v.events) {
		if len(out.Events) == eventsPerRollout {
			break
		}
		if ev.Service == service {
			out.Events = append(out.Events, event(ev))
		}
	}
	slices.Reverse(out.Events)
	return out
}

func weights(w policy.Weights) map[string]uint32 {
	out := make(map[string]uint32, len(w))
	for v, x := range w {
		out[v] = uint32(x)
	}
	return out
}

func counts(c map[string]int) map[string]uint32 {
	out := make(map[string]uint32, len(c))
	for v, n := range c {
		out[v] = uint32(n)
	}
	return out
}

func override(o *policy.Override) *adminv1.Override {
	if o == nil {
		return nil
	}
	return &adminv1.Override{Weights: weights(o.Weights), By: o.By, Reason: o.Reason, At: timestamppb.New(o.At)}
}

func event(e policy.Event) *adminv1.Event {
	return &adminv1.Event{At: timestamppb.New(e.At), Service: e.Service, Kind: e.Kind, By: e.By, Message: e.Message}
}

// ListEvents implements adminv1.AdminServiceServer: the latest events,
// oldest first. Asked for a service that has no event and no policy (a
// typo, most likely), it answers NotFound, naming the services that have
// one, rather than an empty list.
func (s *Server) ListEvents(_ context.Context, req *adminv1.ListEventsRequest) (*adminv1.ListEventsResponse, error) {
	limit := int(req.GetLimit())
	if limit < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "limit: %d is negative; give 0 for the default of 50", limit)
	}
	if limit == 0 {
		limit = 50
	}
	out := &adminv1.ListEventsResponse{}
	for _, ev := range slices.Backward(s.cfg.Engine.Events()) {
		if len(out.Events) == limit {
			break
		}
		if req.GetService() == "" || ev.Service == req.GetService() {
			out.Events = append(out.Events, event(ev))
		}
	}
	if service := req.GetService(); service != "" && len(out.Events) == 0 {
		if v := s.view(); !slices.Contains(v.services, service) {
			return nil, notFound(service, v.services)
		}
	}
	slices.Reverse(out.Events)
	return out, nil
}

// SetWeights implements adminv1.AdminServiceServer. It validates
// everything before it changes anything.
func (s *Server) SetWeights(ctx context.Context, req *adminv1.SetWeightsRequest) (*adminv1.Rollout, error) {
	service := req.GetService()
	v := s.view()
	if !slices.Contains(v.services, service) {
		return nil, notFound(service, v.services)
	}
	r, rolling := v.rollouts[service]
	var part func(string) error
	if rolling {
		part = func(version string) error {
			if version != r.Old && version != r.New {
				return fmt.Errorf("version %s is not part of the rollout (%s → %s)", version, r.Old, r.New)
			}
			return nil
		}
	}
	w, err := parseWeights(req.GetWeights(), s.cfg.Engine.Serving(service), part)
	if err != nil {
		return nil, err
	}
	if err := requireReason(req.GetReason()); err != nil {
		return nil, err
	}
	by, reason := Identity(ctx), req.GetReason()
	if rolling {
		err = s.cfg.Engine.Do(service, func(_ policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
			return policy.SetWeights(r, w, now, by, reason)
		})
	} else {
		err = s.cfg.Engine.SetFixedWeights(service, w, by, reason)
	}
	if err != nil {
		return nil, statusOf(err)
	}
	s.cfg.Logger.Info("admin: weights set", "service", service, "weights", w.String(), "by", by, "reason", reason)
	return s.rollout(service)
}

// parseWeights validates requested weights; errors name the field. part,
// if set, rejects versions outside the rollout.
func parseWeights(in map[string]string, serving map[string]int, part func(string) error) (policy.Weights, error) {
	if len(in) == 0 {
		return nil, status.Error(codes.InvalidArgument, "weights: none given; give a percentage per version, such as v1=90 v2=10")
	}
	w := policy.Weights{}
	for _, version := range slices.Sorted(maps.Keys(in)) {
		bad := func(err error) error {
			return status.Errorf(codes.InvalidArgument, "weights[%q]: %v", version, err)
		}
		x, err := policy.ParseWeight(in[version])
		switch {
		case version == "":
			return nil, bad(errors.New("empty version name"))
		case err != nil:
			return nil, bad(err)
		}
		if part != nil {
			if err := part(version); err != nil {
				return nil, bad(err)
			}
		}
		if x > 0 && serving[version] == 0 {
			return nil, bad(fmt.Errorf("version %s has no healthy endpoints (healthy: %s)", version, healthy(serving)))
		}
		w[version] = x
	}
	if w.Sum() != policy.Full {
		return nil, status.Errorf(codes.InvalidArgument, "weights: sum to %s, must be 100 (%s)", w.Sum(), w)
	}
	return w, nil
}

func healthy(serving map[string]int) string {
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(serving)) {
		if serving[v] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", v, serving[v]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// maxReason bounds a reason's length: a reason is kept in the rollout
// and the journal, and sent back with every view of the rollout, so a
// pasted log would make those views too large for a client to receive.
const maxReason = 1024

// requireReason refuses an operation without a reason, one with nothing
// to read (spaces or invisible characters alone), or one too long: the
// journal says why as well as who.
func requireReason(reason string) error {
	switch {
	case !strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }):
		return status.Error(codes.InvalidArgument, "reason: required: say why, it goes into the journal")
	case len(reason) > maxReason:
		return status.Errorf(codes.InvalidArgument, "reason: %d bytes, at most %d: say why in a sentence, it goes into the journal", len(reason), maxReason)
	}
	return nil
}

// statusOf maps the engine's errors to status codes. An operation that
// could not be saved is Aborted, not Unavailable: a client's own transport
// reports Unavailable when it cannot reach weir, and this is weir
// answering that it applied nothing, which the caller may retry.
func statusOf(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, policy.ErrBadWeights):
		code = codes.InvalidArgument
	case errors.Is(err, policy.ErrNotInProgress), errors.Is(err, policy.ErrNotPaused), errors.Is(err, policy.ErrNoRollback),
		errors.Is(err, policy.ErrOtherVersion), errors.Is(err, policy.ErrNotAborted):
		code = codes.FailedPrecondition
	case errors.Is(err, policy.ErrNoPolicy):
		code = codes.NotFound
	case errors.Is(err, policy.ErrNotSaved):
		code = codes.Aborted
	}
	return status.Error(code, err.Error())
}
