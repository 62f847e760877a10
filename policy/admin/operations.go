package admin

import (
	"context"
	"slices"
	"time"

	"github.com/weir-mesh/weir/policy"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// operation is one of the rollout operations, given the caller and reason.
type operation func(p policy.Policy, r policy.Rollout, now time.Time, by, reason string) (policy.Rollout, policy.Event, error)

func withoutPolicy(f func(r policy.Rollout, now time.Time, by, reason string) (policy.Rollout, policy.Event, error)) operation {
	return func(_ policy.Policy, r policy.Rollout, now time.Time, by, reason string) (policy.Rollout, policy.Event, error) {
		return f(r, now, by, reason)
	}
}

// do runs op on the request's service, journaled with the caller's
// identity, and returns the rollout after it.
func (s *Server) do(ctx context.Context, name string, req *adminv1.OperationRequest, op operation) (*adminv1.Rollout, error) {
	service := req.GetService()
	v := s.view()
	if !slices.Contains(v.services, service) {
		return nil, notFound(service, v.services)
	}
	if err := requireReason(req.GetReason()); err != nil {
		return nil, err
	}
	by, reason := Identity(ctx), req.GetReason()
	err := s.cfg.Engine.Do(service, policy.ExpectingVersion(req.GetExpectVersion(),
		func(p policy.Policy, r policy.Rollout, now time.Time) (policy.Rollout, policy.Event, error) {
			return op(p, r, now, by, reason)
		}))
	if err != nil {
		return nil, statusOf(err)
	}
	s.cfg.Logger.Info("admin: "+name, "service", service, "by", by, "reason", reason)
	return s.rollout(service)
}

// Promote implements adminv1.AdminServiceServer.
func (s *Server) Promote(ctx context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return s.do(ctx, "promote", req, withoutPolicy(policy.Promote))
}

// Pause implements adminv1.AdminServiceServer.
func (s *Server) Pause(ctx context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return s.do(ctx, "pause", req, withoutPolicy(policy.PauseRollout))
}

// Resume implements adminv1.AdminServiceServer.
func (s *Server) Resume(ctx context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return s.do(ctx, "resume", req, policy.Resume)
}

// Abort implements adminv1.AdminServiceServer.
func (s *Server) Abort(ctx context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return s.do(ctx, "abort", req, withoutPolicy(policy.Abort))
}

// Rollback implements adminv1.AdminServiceServer.
func (s *Server) Rollback(ctx context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return s.do(ctx, "rollback", req, policy.Rollback)
}

// Retry implements adminv1.AdminServiceServer.
func (s *Server) Retry(ctx context.Context, req *adminv1.OperationRequest) (*adminv1.Rollout, error) {
	return s.do(ctx, "retry", req, policy.Retry)
}
