// Package tlsfiles serves gRPC over TLS from certificate files that may be
// replaced while weir runs, as cert-manager, Vault agents and Kubernetes
// secret volumes replace them before they expire: weir picks up the new
// files at the next handshake, without a restart (which would drop every
// xDS stream at once). Files that cannot be read or do not match, as while
// they are half written, leave the last good ones serving, and the error is
// logged once per change.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Files are a TLS listener's files; ClientCA makes it mutual TLS.
type Files struct {
	Cert, Key, ClientCA string
}

// stamp tells whether a file changed: its modification time and size, or
// the error that stat gave. Reading a file at every handshake would cost
// more than the handshake; comparing stamps costs three stats.
type stamp struct {
	mod  time.Time
	size int64
	err  string
}

func stampOf(path string) stamp {
	if path == "" {
		return stamp{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{err: err.Error()}
	}
	return stamp{mod: fi.ModTime(), size: fi.Size()}
}

// Config returns the TLS configuration of a gRPC server that serves f's
// certificate, and requires client certificates signed by f.ClientCA if it
// is set; nil when f is empty. flag names the flags in errors ("--xds").
// The files are read now, so that a server with bad files does not start,
// and again at a handshake after one of them changed.
func Config(f Files, flag string, logger *slog.Logger) (*tls.Config, error) {
	switch {
	case f == Files{}:
		return nil, nil
	case f.Cert == "" || f.Key == "":
		return nil, fmt.Errorf("%s-tls-cert and %s-tls-key go together: give both to serve TLS (and %s-client-ca to require client certificates)", flag, flag, flag)
	}
	r := &reloader{files: f, flag: flag, logger: logger}
	r.stamps = r.stat()
	var err error
	if r.current, err = load(f, flag); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: r.config}, nil
}

// reloader holds the last good configuration and the stamps of the files
// it was read from.
type reloader struct {
	files  Files
	flag   string
	logger *slog.Logger

	mu      sync.Mutex
	current *tls.Config
	stamps  [3]stamp // of the files current was read from
	failed  [3]stamp // of the files last found bad, which are not read again
}

func (r *reloader) stat() [3]stamp {
	return [3]stamp{stampOf(r.files.Cert), stampOf(r.files.Key), stampOf(r.files.ClientCA)}
}

// config is tls.Config.GetConfigForClient: the configuration read from the
// files as they are now, or the last good one.
func (r *reloader) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stat()
	if now == r.stamps || now == r.failed {
		return r.current, nil
	}
	cfg, err := load(r.files, r.flag)
	if err != nil {
		r.failed = now
		r.logger.Error("TLS files changed but cannot be used; serving the last good ones", "error", err,
			"cert", r.files.Cert, "key", r.files.Key, "client_ca", r.files.ClientCA)
		return r.current, nil
	}
	r.current, r.stamps = cfg, now
	r.logger.Info("TLS files reloaded", "flag", r.flag+"-tls-cert", "cert", r.files.Cert)
	return cfg, nil
}

// load reads f into a server configuration for gRPC, which needs HTTP/2
// negotiated by ALPN.
func load(f Files, flag string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("%s-tls-cert/%s-tls-key: %w", flag, flag, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	if f.ClientCA == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(f.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("%s-client-ca: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s-client-ca %s: %w", flag, f.ClientCA, errNoPEM)
	}
	cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	return cfg, nil
}

var errNoPEM = errors.New("no PEM certificate in it")
