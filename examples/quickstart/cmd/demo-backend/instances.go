package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// defaultInstances matches examples/quickstart/catalog.yaml.
const defaultInstances = "greeter-v1-a=v1@127.0.0.1:9101,greeter-v1-b=v1@127.0.0.1:9102," +
	"greeter-v2-a=v2@127.0.0.1:9201,greeter-v2-b=v2@127.0.0.1:9202"

// errInstances is wrapped by every error parseInstances returns.
var errInstances = errors.New("invalid --instances")

// instance is one backend to run: it answers as id of version on addr.
type instance struct {
	ID, Version, Addr string
}

// parseInstances parses a comma-separated list of id=version@host:port.
// Ids and addresses must be unique, since each id is one catalog entry
// and each address one listener.
func parseInstances(s string) ([]instance, error) {
	var out []instance
	ids, addrs := map[string]bool{}, map[string]bool{}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		in, err := parseInstance(entry)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d %q: %v", errInstances, i+1, entry, err)
		}
		if ids[in.ID] {
			return nil, fmt.Errorf("%w: entry %d %q: id %q appears twice", errInstances, i+1, entry, in.ID)
		}
		if addrs[in.Addr] {
			return nil, fmt.Errorf("%w: entry %d %q: address %s appears twice", errInstances, i+1, entry, in.Addr)
		}
		ids[in.ID], addrs[in.Addr] = true, true
		out = append(out, in)
	}
	return out, nil
}

func parseInstance(entry string) (instance, error) {
	const want = "want id=version@host:port, e.g. greeter-v1-a=v1@127.0.0.1:9101"
	id, rest, ok := strings.Cut(entry, "=")
	if !ok {
		return instance{}, fmt.Errorf("no '=' (%s)", want)
	}
	version, addr, ok := strings.Cut(rest, "@")
	if !ok {
		return instance{}, fmt.Errorf("no '@' (%s)", want)
	}
	if id == "" || version == "" {
		return instance{}, fmt.Errorf("empty id or version (%s)", want)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return instance{}, fmt.Errorf("address %q is not host:port (%s)", addr, want)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return instance{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return instance{ID: id, Version: version, Addr: addr}, nil
}
