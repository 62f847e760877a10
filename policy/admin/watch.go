package admin

import (
	"time"

	"google.golang.org/protobuf/proto"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// watchBacklog is how many past events the first update of a watch
// carries.
const watchBacklog = 20

// WatchRollouts implements adminv1.AdminServiceServer: every rollout now,
// with the latest events, then again whenever a rollout or the fleet's
// applied state changes or events are journaled. It polls the engine: a
// watcher is an operator's terminal, and polling keeps the engine free of
// subscriber bookkeeping.
func (s *Server) WatchRollouts(_ *adminv1.WatchRolloutsRequest, stream adminv1.AdminService_WatchRolloutsServer) error {
	ctx := stream.Context()
	events, seq := s.cfg.Engine.EventsSince(0)
	events = events[max(0, len(events)-watchBacklog):]
	var last []*adminv1.Rollout
	t := time.NewTicker(s.cfg.WatchInterval)
	defer t.Stop()
	for first := true; ; first = false {
		rollouts := s.rollouts()
		if first || len(events) > 0 || !sameRollouts(last, rollouts) {
			up := &adminv1.RolloutUpdate{Rollouts: rollouts}
			for _, ev := range events {
				up.Events = append(up.Events, event(ev))
			}
			if err := stream.Send(up); err != nil {
				return err
			}
			last = rollouts
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		events, seq = s.cfg.Engine.EventsSince(seq)
	}
}

// sameRollouts compares rollouts but for the time in step, which always
// moves.
func sameRollouts(a, b []*adminv1.Rollout) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := proto.CloneOf(a[i]), proto.CloneOf(b[i])
		x.TimeInStep, y.TimeInStep = nil, nil
		if !proto.Equal(x, y) {
			return false
		}
	}
	return true
}
