package consul

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/yamlfile"
)

// Consul's maintenance mode shows up as critical checks with these IDs.
const (
	nodeMaintenanceCheck     = "_node_maintenance"
	serviceMaintenancePrefix = "_service_maintenance:"
	instanceIDSeparator      = "/"
	defaultVersionMetaKey    = "version"
	defaultVersionTagPrefix  = "version="
	consulServiceName        = "consul"
)

// versionRule says where an instance's version is read from.
type versionRule struct {
	metaKey   string // service meta key, checked first
	tagPrefix string // then the first tag with this prefix
}

// version returns the instance's version and whether one was found.
func (r versionRule) version(svc *api.AgentService) (string, bool) {
	if v := svc.Meta[r.metaKey]; v != "" {
		return v, true
	}
	for _, tag := range svc.Tags {
		if v, ok := strings.CutPrefix(tag, r.tagPrefix); ok && v != "" {
			return v, true
		}
	}
	return "", false
}

// skipReason says why an instance or a service was left out of the model.
// Consul accepts data that weir cannot route to (ports out of range, names
// that would make cluster names collide), and one such entry must not make
// snapshot.Build fail for the whole world, so it is dropped here, at the edge.
type skipReason string

// The reasons, also the values of the metric's reason label.
const (
	skipAddress     skipReason = "address"      // fails discovery.ParseAddress
	skipPort        skipReason = "port"         // outside 1..65535
	skipVersion     skipReason = "version"      // fails yamlfile.CheckVersion
	skipServiceName skipReason = "service_name" // fails yamlfile.CheckServiceName
)

// skipReasons lists every reason, so that each gauge exists from the start.
var skipReasons = []skipReason{skipAddress, skipPort, skipVersion, skipServiceName}

// skipped is one instance left out, with what an operator needs to fix it.
type skipped struct {
	reason skipReason
	detail string
}

// conversion is the result of turning one service's health entries into
// instances, with what could not be converted cleanly.
type conversion struct {
	instances   []discovery.Instance
	unversioned []string           // instance IDs grouped under version ""
	skipped     map[string]skipped // instance ID → why it was left out
}

// convert turns the entries of /v1/health/service/:name into instances.
// Instances are keyed by node and service ID, since service IDs are only
// unique per agent.
func convert(entries []*api.ServiceEntry, rule versionRule, excludeWarning bool) conversion {
	var c conversion
	skip := func(id string, reason skipReason, detail string) {
		if c.skipped == nil {
			c.skipped = make(map[string]skipped)
		}
		c.skipped[id] = skipped{reason: reason, detail: detail}
	}
	for _, e := range entries {
		if e.Service == nil || e.Node == nil {
			continue
		}
		id := e.Node.Node + instanceIDSeparator + e.Service.ID
		addr, err := address(e)
		if err != nil {
			skip(id, skipAddress, err.Error())
			continue
		}
		if p := e.Service.Port; p < 1 || p > 65535 {
			skip(id, skipPort, fmt.Sprintf("port %d is outside 1..65535", p))
			continue
		}
		version, ok := rule.version(e.Service)
		if !ok {
			c.unversioned = append(c.unversioned, id)
		} else if err := yamlfile.CheckVersion(version); err != nil {
			skip(id, skipVersion, err.Error())
			continue
		}
		c.instances = append(c.instances, discovery.Instance{
			ID: id, Address: addr, Port: uint32(e.Service.Port), Version: version,
			Health: health(e.Checks, excludeWarning),
		})
	}
	return c
}

// address returns the instance's IP: the service address, else the node's
// (see discovery.ParseAddress).
func address(e *api.ServiceEntry) (string, error) {
	return discovery.ParseAddress(cmp.Or(e.Service.Address, e.Node.Address))
}

// health aggregates node and service checks the way Consul's own health
// endpoint does, except that maintenance — node or service — wins over
// everything, so that proxies drain the instance instead of dropping it.
// With excludeWarning a warning counts as critical.
func health(checks api.HealthChecks, excludeWarning bool) discovery.Health {
	h := discovery.Passing
	for _, c := range checks {
		if c.CheckID == nodeMaintenanceCheck || strings.HasPrefix(c.CheckID, serviceMaintenancePrefix) {
			return discovery.Maintenance
		}
		switch c.Status {
		case api.HealthCritical:
			h = discovery.Critical
		case api.HealthWarning:
			if excludeWarning {
				h = discovery.Critical
			} else if h == discovery.Passing {
				h = discovery.Warning
			}
		}
	}
	return h
}
