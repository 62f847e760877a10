package consul

import "testing"

// TestAPIConfigKeepsEnvironmentTLS sets the CA file by flag while the client
// certificate comes from the environment: the flag must not wipe it.
func TestAPIConfigKeepsEnvironmentTLS(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8501")
	t.Setenv("CONSUL_HTTP_SSL", "")
	t.Setenv("CONSUL_CACERT", "/env/ca.pem")
	t.Setenv("CONSUL_CLIENT_CERT", "/env/client.pem")
	t.Setenv("CONSUL_CLIENT_KEY", "/env/client-key.pem")

	cfg := apiConfig(ClientConfig{CAFile: "/flag/ca.pem"})
	tls := cfg.TLSConfig
	if tls.CAFile != "/flag/ca.pem" || tls.CertFile != "/env/client.pem" || tls.KeyFile != "/env/client-key.pem" {
		t.Errorf("TLS = CA %q, cert %q, key %q; want the CA from the flag and the rest from the environment", tls.CAFile, tls.CertFile, tls.KeyFile)
	}
	if cfg.Scheme != "https" {
		t.Errorf("scheme = %q with a TLS flag set, want https", cfg.Scheme)
	}

	cfg = apiConfig(ClientConfig{})
	if tls := cfg.TLSConfig; tls.CAFile != "/env/ca.pem" || tls.CertFile != "/env/client.pem" {
		t.Errorf("without flags TLS = CA %q, cert %q; want the environment's", tls.CAFile, tls.CertFile)
	}
	if cfg.Scheme != "http" {
		t.Errorf("scheme = %q without TLS flags or CONSUL_HTTP_SSL, want http", cfg.Scheme)
	}
}
