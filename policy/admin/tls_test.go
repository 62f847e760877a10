package admin

import (
	"crypto/tls"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weir-mesh/weir/internal/testca"
	adminv1 "github.com/weir-mesh/weir/policy/admin/v1"
)

func TestMutualTLS(t *testing.T) {
	ca, other := testca.New(t, "weir test CA"), testca.New(t, "someone else's CA")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "weir").Certificate}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	engine := testEngine(t)
	addr := testServer(t, NewServer(Config{Engine: engine}), Auth{ClientCerts: true}, serverTLS)
	client := func(cert tls.Certificate) adminv1.AdminServiceClient {
		creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return adminv1.NewAdminServiceClient(conn)
	}

	_, err := client(other.Client(t, "mallory").Certificate).Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter"})
	if err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	t.Logf("wrong client certificate: %v", err)

	r, err := client(ca.Client(t, "bob").Certificate).Pause(ctx(t), &adminv1.OperationRequest{Service: "greeter", Reason: "mtls"})
	if err != nil {
		t.Fatal(err)
	}
	if last := r.Events[len(r.Events)-1]; last.By != "bob" || r.Phase != "paused" {
		t.Errorf("after pause over mTLS: %v, last event by %q, want bob", r.Phase, last.By)
	}
}
