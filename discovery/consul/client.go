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
	if cc.CAFile != "" || cc.CertFile != "" || cc.KeyFile != "" {
		cfg.Scheme = "https"
		cfg.TLSConfig.CAFile = cc.CAFile
		cfg.TLSConfig.CertFile = cc.CertFile
		cfg.TLSConfig.KeyFile = cc.KeyFile
	}
	cfg.Transport.MaxIdleConns = maxIdleConns
	cfg.Transport.MaxIdleConnsPerHost = maxIdleConns
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", cfg.Address, err)
	}
	return client, nil
}
