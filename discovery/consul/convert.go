package consul

import (
	"net/netip"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/weir-mesh/weir/discovery"
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

// conversion is the result of turning one service's health entries into
// instances, with what could not be converted cleanly.
type conversion struct {
	instances   []discovery.Instance
	unversioned []string // instance IDs grouped under version ""
	badAddress  []string // instance IDs skipped: address is not an IP literal
}

// convert turns the entries of /v1/health/service/:name into instances.
// Instances are keyed by node and service ID, since service IDs are only
// unique per agent.
func convert(entries []*api.ServiceEntry, rule versionRule, excludeWarning bool) conversion {
	var c conversion
	for _, e := range entries {
		if e.Service == nil || e.Node == nil {
			continue
		}
		id := e.Node.Node + instanceIDSeparator + e.Service.ID
		addr, ok := address(e)
		if !ok {
			c.badAddress = append(c.badAddress, id)
			continue
		}
		version, ok := rule.version(e.Service)
		if !ok {
			c.unversioned = append(c.unversioned, id)
		}
		c.instances = append(c.instances, discovery.Instance{
			ID: id, Address: addr, Port: uint32(e.Service.Port), Version: version,
			Health: health(e.Checks, excludeWarning),
		})
	}
	return c
}

// address returns the instance's IP: the service address, else the node's.
func address(e *api.ServiceEntry) (string, bool) {
	a := e.Service.Address
	if a == "" {
		a = e.Node.Address
	}
	ip, err := netip.ParseAddr(a)
	if err != nil || ip.Zone() != "" {
		return "", false
	}
	return ip.String(), true
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
