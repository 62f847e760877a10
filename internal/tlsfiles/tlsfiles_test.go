package tlsfiles

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weir-mesh/weir/internal/testca"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// replace writes data to path as a file that stat tells apart from the
// one before, even within the file system's clock resolution.
func replace(t *testing.T, path string, data []byte, generation int) {
	t.Helper()
	must(t, os.WriteFile(path, data, 0o600))
	at := time.Now().Add(time.Duration(generation) * time.Second)
	must(t, os.Chtimes(path, at, at))
}

// serve accepts TLS connections on loopback with cfg, until the test
// ends, and writes one byte on each whose handshake succeeds.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	must(t, err)
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if conn.(*tls.Conn).Handshake() == nil {
					conn.Write([]byte{1})
				}
			}()
		}
	}()
	return lis.Addr().String()
}

// dial returns the state of a client handshake with addr that the server
// accepted too. Over TLS 1.3 the server checks the client's certificate
// after the client's handshake returns, so the client waits for the byte
// serve writes, or the server's refusal.
func dial(addr string, roots *x509.CertPool, client []tls.Certificate) (tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, Certificates: client, NextProtos: []string{"h2"}})
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return tls.ConnectionState{}, err
	}
	return conn.ConnectionState(), nil
}

// TestServesReplacedFiles: a certificate replaced on disk is served from
// the next handshake on; files that cannot be used leave the last good
// certificate serving and are reported once.
func TestServesReplacedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "test CA")
	files := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	write := func(leaf testca.Leaf, generation int) {
		t.Helper()
		certPEM, keyPEM := leaf.PEM(t)
		replace(t, files.Cert, certPEM, generation)
		replace(t, files.Key, keyPEM, generation)
	}
	first := ca.Server(t, "weir")
	write(first, 0)
	var logs bytes.Buffer
	cfg, err := Config(files, "--xds", slog.New(slog.NewTextHandler(&logs, nil)))
	must(t, err)
	addr := serve(t, cfg)

	served := func(want testca.Leaf) {
		t.Helper()
		st, err := dial(addr, ca.Pool(), nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if got := st.PeerCertificates[0]; !slices.Equal(got.Raw, want.Certificate.Certificate[0]) {
			t.Errorf("served another certificate (serial %d) than the one the files held last", got.SerialNumber)
		}
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("negotiated %q, want h2 (gRPC clients require it)", st.NegotiatedProtocol)
		}
	}
	served(first)

	second := ca.Server(t, "weir")
	write(second, 1)
	served(second)

	replace(t, files.Cert, []byte("half written"), 2)
	served(second)
	served(second)
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Errorf("bad files reported %d times, want once:\n%s", n, logs.String())
	}

	unpaired, _ := ca.Server(t, "weir").PEM(t) // with second's key: no pair
	replace(t, files.Cert, unpaired, 3)
	served(second)

	fourth := ca.Server(t, "weir")
	write(fourth, 4)
	served(fourth)
}

// TestRequiresClientsOfTheReplacedCA: replacing the client CA file changes
// which client certificates a mutual TLS listener accepts.
func TestRequiresClientsOfTheReplacedCA(t *testing.T) {
	dir := t.TempDir()
	serverCA, oldCA, newCA := testca.New(t, "server CA"), testca.New(t, "old client CA"), testca.New(t, "new client CA")
	files := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	certPEM, keyPEM := serverCA.Server(t, "weir").PEM(t)
	replace(t, files.Cert, certPEM, 0)
	replace(t, files.Key, keyPEM, 0)
	replace(t, files.ClientCA, oldCA.PEM(), 0)
	cfg, err := Config(files, "--admin", slog.New(slog.DiscardHandler))
	must(t, err)
	addr := serve(t, cfg)
	oldClient := []tls.Certificate{oldCA.Client(t, "proxy").Certificate}
	newClient := []tls.Certificate{newCA.Client(t, "proxy").Certificate}

	if _, err := dial(addr, serverCA.Pool(), oldClient); err != nil {
		t.Fatalf("a client of the configured CA was refused: %v", err)
	}
	if _, err := dial(addr, serverCA.Pool(), newClient); err == nil {
		t.Fatal("a client of another CA was accepted")
	}
	replace(t, files.ClientCA, newCA.PEM(), 1)
	if _, err := dial(addr, serverCA.Pool(), newClient); err != nil {
		t.Fatalf("a client of the new CA was refused: %v", err)
	}
	if _, err := dial(addr, serverCA.Pool(), oldClient); err == nil {
		t.Fatal("a client of the replaced CA was still accepted")
	}
}

func TestConfigRefusesBadFilesAtStart(t *testing.T) {
	if cfg, err := Config(Files{}, "--xds", slog.New(slog.DiscardHandler)); cfg != nil || err != nil {
		t.Errorf("no files: %v, %v; want no TLS and no error", cfg, err)
	}
	if _, err := Config(Files{Cert: "tls.crt"}, "--xds", slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "--xds-tls-cert and --xds-tls-key go together") {
		t.Errorf("cert without key: %v", err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	must(t, os.WriteFile(bad, []byte("not PEM"), 0o600))
	if _, err := Config(Files{Cert: bad, Key: bad}, "--admin", slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "--admin-tls-cert/--admin-tls-key") {
		t.Errorf("unreadable pair: %v", err)
	}
}
