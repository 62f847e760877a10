package consul

import (
	"fmt"

	"github.com/hashicorp/consul/api"
)

// ClientConfig is how weir reaches Consul. Empty fields fall back to the
// standard environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT,
// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, ...), then to Consul's defaults.
type ClientConfig struct {
	Address    string
	Token      string
	Datacenter string
	CAFile     string
	CertFile   string
	KeyFile    string
}

// maxIdleConns keeps the connection of every blocking query reusable: weir
// holds one query open per service, and the default pool of a few idle
// connections would close and reopen them all the time.
const maxIdleConns = 16384

// NewClient returns a Consul API client for cc.
func NewClient(cc ClientConfig) (*api.Client, error) {
	cfg := apiConfig(cc)
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", cfg.Address, err)
	}
	return client, nil
}

// apiConfig returns Consul's configuration from the environment, overridden
// by the non-empty fields of cc.
func apiConfig(cc ClientConfig) *api.Config {
	cfg := api.DefaultConfig()
	if cc.Address != "" {
		cfg.Address = cc.Address
	}
	if cc.Token != "" {
		cfg.Token = cc.Token
	}
	if cc.Datacenter != "" {
		cfg.Datacenter = cc.Datacenter
	}
	// A flag overrides only its own field: setting the CA file must not wipe
	// a client certificate taken from CONSUL_CLIENT_CERT/KEY.
	if cc.CAFile != "" {
		cfg.TLSConfig.CAFile = cc.CAFile
	}
	if cc.CertFile != "" {
		cfg.TLSConfig.CertFile = cc.CertFile
	}
	if cc.KeyFile != "" {
		cfg.TLSConfig.KeyFile = cc.KeyFile
	}
	if cc.CAFile != "" || cc.CertFile != "" || cc.KeyFile != "" {
		cfg.Scheme = "https"
	}
	cfg.Transport.MaxIdleConns = maxIdleConns
	cfg.Transport.MaxIdleConnsPerHost = maxIdleConns
	return cfg
}
