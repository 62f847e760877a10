package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

// target is a control plane under test, running as a process of its own
// that reads the world's files and serves ADS.
type target struct {
	*process
	// setWeights moves weightedService's split the way an operator of this
	// server does: weir through its admin API, the baseline (which has
	// none) by rewriting the policy file.
	setWeights func(ctx context.Context, ws weights) error
	// weights returns weightedService's split as the server has it.
	weights func(ctx context.Context) (weights, error)
	close   func()
}

// server names a control plane and how to start it on a world.
type server struct {
	name  string
	start func(ctx context.Context, cfg config, w *world) (*target, error)
}

var servers = []server{{name: "weir", start: startWeir}, {name: "baseline", start: startBaseline}}

// startWeir runs `weir serve` on the world's files, with its admin API on a
// free loopback port and a token, durable state in the world's directory,
// and the profiler on its ops port.
func startWeir(ctx context.Context, cfg config, w *world) (*target, error) {
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	const token = "weir-bench-token"
	tokenFile := filepath.Join(w.dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte("weir-bench:"+token+"\n"), 0o600); err != nil {
		return nil, err
	}
	p, err := startProcess(ctx, "weir", []string{cfg.Weir, "serve",
		"--catalog", w.catalogPath(), "--policies", w.policyDir(), "--state-dir", filepath.Join(w.dir, "state"),
		"--admin-addr", adminAddr, "--admin-token-file", tokenFile, "--pprof", "--log-level", "warn",
		"--debounce", cfg.Debounce.String()}, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		p.stop()
		return nil, err
	}
	admin := adminv1.NewAdminServiceClient(conn)
	return &target{process: p,
		setWeights: func(ctx context.Context, ws weights) error {
			_, err := admin.SetWeights(ctx, &adminv1.SetWeightsRequest{Service: weightedService, Reason: "weir-bench",
				Weights: map[string]string{"v1": strconv.Itoa(ws.v1), "v2": strconv.Itoa(ws.v2)}})
			return err
		},
		weights: func(ctx context.Context) (weights, error) {
			r, err := admin.GetRollout(ctx, &adminv1.GetRolloutRequest{Service: weightedService})
			ws := r.GetWeights()
			return weights{v1: int(ws["v1"] / 100), v2: int(ws["v2"] / 100)}, err
		},
		close: func() { conn.Close(); p.stop() },
	}, nil
}

// startBaseline runs this binary's `baseline` command on the world's files.
func startBaseline(ctx context.Context, cfg config, w *world) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(ctx, "baseline", []string{self, "baseline",
		"--catalog", w.catalogPath(), "--policies", w.policyDir()}, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return &target{process: p,
		setWeights: func(_ context.Context, ws weights) error { return w.writeWeights(ws) },
		weights:    func(context.Context) (weights, error) { return w.readWeights() },
		close:      p.stop,
	}, nil
}

// bearer sends an admin token on every call. The admin API is on loopback
// without TLS here, which weir allows for loopback addresses only.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// checkWeir reports a clear error when the weir binary is missing.
func checkWeir(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("--weir %s: %w (build it with `make build`)", path, err)
	}
	return nil
}
