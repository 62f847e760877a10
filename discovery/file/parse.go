// Package file is weir's embedded discovery source: a catalog file that lists
// services and their instances, watched for edits. It needs nothing but a
// file, which makes it the default for the quickstart and for tests; Consul
// takes its place in production.
//
// The format:
//
//	services:
//	  - name: greeter
//	    instances:
//	      - {id: greeter-v1-a, address: 127.0.0.1, port: 9101, version: v1}
//	      - {id: greeter-v2-a, address: 127.0.0.1, port: 9201, version: v2, health: passing}
package file

import (
	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/yamlfile"
)

// seen remembers on which line a name was first defined.
type seen map[string]int

// Parse parses and validates a catalog file. filename is only used in errors,
// which are *yamlfile.Error values naming the file, line and field of the
// first problem.
func Parse(filename string, data []byte) (discovery.Model, error) {
	root, err := yamlfile.Parse(filename, data)
	if err != nil {
		return discovery.Model{}, err
	}
	top, err := root.Fields("services")
	if err != nil {
		return discovery.Model{}, err
	}
	sv, err := top.Require("services")
	if err != nil {
		return discovery.Model{}, err
	}
	items, err := sv.List()
	if err != nil {
		return discovery.Model{}, err
	}
	services := make([]discovery.Service, 0, len(items))
	names, ids := seen{}, seen{}
	for _, item := range items {
		s, err := parseService(item, names, ids)
		if err != nil {
			return discovery.Model{}, err
		}
		services = append(services, s)
	}
	m, err := discovery.NewModel(services)
	if err != nil { // unreachable: names are checked above
		return discovery.Model{}, &yamlfile.Error{File: filename, Field: "services", Msg: err.Error()}
	}
	return m, nil
}

func parseService(v yamlfile.Value, names, ids seen) (discovery.Service, error) {
	m, err := v.Fields("name", "instances")
	if err != nil {
		return discovery.Service{}, err
	}
	nv, err := m.Require("name")
	if err != nil {
		return discovery.Service{}, err
	}
	name, err := nv.Text()
	if err != nil {
		return discovery.Service{}, err
	}
	if err := yamlfile.CheckServiceName(name); err != nil {
		return discovery.Service{}, nv.Errorf("%v", err)
	}
	if line, dup := names[name]; dup {
		return discovery.Service{}, nv.Errorf("service %q is already listed on line %d", name, line)
	}
	names[name] = nv.Line

	s := discovery.Service{Name: name}
	iv, ok := m.Get("instances")
	if !ok {
		return s, nil
	}
	items, err := iv.List()
	if err != nil {
		return discovery.Service{}, err
	}
	for _, item := range items {
		in, err := parseInstance(item, ids)
		if err != nil {
			return discovery.Service{}, err
		}
		s.Instances = append(s.Instances, in)
	}
	return s, nil
}

func parseInstance(v yamlfile.Value, ids seen) (discovery.Instance, error) {
	m, err := v.Fields("id", "address", "port", "version", "health")
	if err != nil {
		return discovery.Instance{}, err
	}
	var in discovery.Instance
	if in.ID, err = parseID(m, ids); err != nil {
		return discovery.Instance{}, err
	}
	if in.Address, err = parseAddress(m); err != nil {
		return discovery.Instance{}, err
	}
	if in.Port, err = parsePort(m); err != nil {
		return discovery.Instance{}, err
	}
	if in.Version, err = optionalText(m, "version", yamlfile.CheckVersion); err != nil {
		return discovery.Instance{}, err
	}
	health, err := optionalText(m, "health", nil)
	if err != nil {
		return discovery.Instance{}, err
	}
	if in.Health, err = discovery.ParseHealth(health); err != nil {
		hv, _ := m.Get("health")
		return discovery.Instance{}, hv.Errorf("%v", err)
	}
	return in, nil
}

func parseID(m yamlfile.Map, ids seen) (string, error) {
	v, err := m.Require("id")
	if err != nil {
		return "", err
	}
	id, err := v.Text()
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", v.Errorf("is required")
	}
	if line, dup := ids[id]; dup {
		return "", v.Errorf("instance id %q is already used on line %d; ids must be unique across the file", id, line)
	}
	ids[id] = v.Line
	return id, nil
}

// parseAddress returns the address in its canonical form (see
// discovery.ParseAddress).
func parseAddress(m yamlfile.Map) (string, error) {
	v, err := m.Require("address")
	if err != nil {
		return "", err
	}
	s, err := v.Text()
	if err != nil {
		return "", err
	}
	addr, err := discovery.ParseAddress(s)
	if err != nil {
		return "", v.Errorf("%v", err)
	}
	return addr, nil
}

func parsePort(m yamlfile.Map) (uint32, error) {
	v, err := m.Require("port")
	if err != nil {
		return 0, err
	}
	p, err := v.Int()
	if err != nil {
		return 0, err
	}
	if p < 1 || p > 65535 {
		return 0, v.Errorf("port %d is out of range (valid: 1-65535)", p)
	}
	return uint32(p), nil
}

// optionalText returns the text of key, "" if it is absent or null. check, if
// not nil, validates a present value.
func optionalText(m yamlfile.Map, key string, check func(string) error) (string, error) {
	v, ok := m.Get(key)
	if !ok || v.IsNull() {
		return "", nil
	}
	s, err := v.Text()
	if err != nil {
		return "", err
	}
	if check != nil {
		if err := check(s); err != nil {
			return "", v.Errorf("%v", err)
		}
	}
	return s, nil
}
