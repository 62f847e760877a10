package tlsfiles

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// authority is a test CA that signs server and client certificates.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newAuthority(t *testing.T, name string) authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return authority{cert, key, der}
}

// leaf returns a certificate for 127.0.0.1 with serial, signed by a, and
// its key, PEM encoded.
func (a authority) leaf(t *testing.T, serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "weir"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func (a authority) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.der})
}

func (a authority) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.cert)
	return p
}

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
	ca := newAuthority(t, "test CA")
	files := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	certPEM, keyPEM := ca.leaf(t, 1, x509.ExtKeyUsageServerAuth)
	replace(t, files.Cert, certPEM, 0)
	replace(t, files.Key, keyPEM, 0)
	var logs bytes.Buffer
	cfg, err := Config(files, "--xds", slog.New(slog.NewTextHandler(&logs, nil)))
	must(t, err)
	addr := serve(t, cfg)

	served := func(want int64) {
		t.Helper()
		st, err := dial(addr, ca.pool(), nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if got := st.PeerCertificates[0].SerialNumber.Int64(); got != want {
			t.Errorf("served certificate %d, want %d", got, want)
		}
		if st.NegotiatedProtocol != "h2" {
			t.Errorf("negotiated %q, want h2 (gRPC clients require it)", st.NegotiatedProtocol)
		}
	}
	served(1)

	certPEM, keyPEM = ca.leaf(t, 2, x509.ExtKeyUsageServerAuth)
	replace(t, files.Cert, certPEM, 1)
	replace(t, files.Key, keyPEM, 1)
	served(2)

	replace(t, files.Cert, []byte("half written"), 2)
	served(2)
	served(2)
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Errorf("bad files reported %d times, want once:\n%s", n, logs.String())
	}

	certPEM, _ = ca.leaf(t, 3, x509.ExtKeyUsageServerAuth) // with the key of 2: no pair
	replace(t, files.Cert, certPEM, 3)
	served(2)

	certPEM, keyPEM = ca.leaf(t, 4, x509.ExtKeyUsageServerAuth)
	replace(t, files.Cert, certPEM, 4)
	replace(t, files.Key, keyPEM, 4)
	served(4)
}

// TestRequiresClientsOfTheReplacedCA: replacing the client CA file changes
// which client certificates a mutual TLS listener accepts.
func TestRequiresClientsOfTheReplacedCA(t *testing.T) {
	dir := t.TempDir()
	serverCA, oldCA, newCA := newAuthority(t, "server CA"), newAuthority(t, "old client CA"), newAuthority(t, "new client CA")
	files := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	certPEM, keyPEM := serverCA.leaf(t, 1, x509.ExtKeyUsageServerAuth)
	replace(t, files.Cert, certPEM, 0)
	replace(t, files.Key, keyPEM, 0)
	replace(t, files.ClientCA, oldCA.pem(), 0)
	cfg, err := Config(files, "--admin", slog.New(slog.DiscardHandler))
	must(t, err)
	addr := serve(t, cfg)
	client := func(a authority) []tls.Certificate {
		c, k := a.leaf(t, 9, x509.ExtKeyUsageClientAuth)
		pair, err := tls.X509KeyPair(c, k)
		must(t, err)
		return []tls.Certificate{pair}
	}
	oldClient, newClient := client(oldCA), client(newCA)

	if _, err := dial(addr, serverCA.pool(), oldClient); err != nil {
		t.Fatalf("a client of the configured CA was refused: %v", err)
	}
	if _, err := dial(addr, serverCA.pool(), newClient); err == nil {
		t.Fatal("a client of another CA was accepted")
	}
	replace(t, files.ClientCA, newCA.pem(), 1)
	if _, err := dial(addr, serverCA.pool(), newClient); err != nil {
		t.Fatalf("a client of the new CA was refused: %v", err)
	}
	if _, err := dial(addr, serverCA.pool(), oldClient); err == nil {
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
