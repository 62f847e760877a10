package file

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weir-mesh/weir/discovery"
	"github.com/weir-mesh/weir/internal/yamlfile"
)

func TestParse(t *testing.T) {
	in := `# The quickstart catalog.
services:
  - name: greeter
    instances:
      - {id: greeter-v2-a, address: 127.0.0.1, port: 9201, version: v2, health: passing}
      - {id: greeter-v1-a, address: "127.0.0.1", port: 9101, version: v1}
      - id: greeter-v1-b
        address: 2001:DB8::1
        port: 9102
        version: 1.0
        health: maintenance
  - name: empty
    instances: []
  - name: bare
  - name: 0-unversioned
    instances:
      - {id: u, address: 10.0.0.1, port: 65535, health: critical}
`
	got, err := Parse("catalog.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []discovery.Service{
		{Name: "0-unversioned", Instances: []discovery.Instance{
			{ID: "u", Address: "10.0.0.1", Port: 65535, Health: discovery.Critical},
		}},
		{Name: "bare"},
		{Name: "empty"},
		{Name: "greeter", Instances: []discovery.Instance{
			{ID: "greeter-v1-a", Address: "127.0.0.1", Port: 9101, Version: "v1"},
			{ID: "greeter-v1-b", Address: "2001:db8::1", Port: 9102, Version: "1.0", Health: discovery.Maintenance},
			{ID: "greeter-v2-a", Address: "127.0.0.1", Port: 9201, Version: "v2", Health: discovery.Passing},
		}},
	}
	if diff := cmp.Diff(want, got.Services(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseEmptyCatalog(t *testing.T) {
	got, err := Parse("catalog.yaml", []byte("services: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.Services()); n != 0 {
		t.Errorf("got %d services, want 0", n)
	}
}

func TestParseErrors(t *testing.T) {
	const (
		nameRule    = `must be 1-63 lower-case letters, digits or '-', not starting or ending with '-' (^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$)`
		versionRule = `must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$)`
	)
	tests := []struct {
		name, in, want string
	}{
		{"empty file", "", "c.yaml: file is empty, want a YAML mapping"},
		{"syntax error", "services:\n  - name: a\n    instances\n    x: 1\n", "c.yaml:3: invalid YAML: could not find expected ':'"},
		{"root is a list", "- name: a\n", "c.yaml:1: the document must be a mapping, not a list"},
		{"unknown root field", "service: []\n", `c.yaml:1: unknown field "service" (valid: services)`},
		{"missing services", "{}\n", "c.yaml:1: services: is required"},
		{"services not a list", "services: {name: a}\n", "c.yaml:1: services: must be a list, not a mapping"},
		{"unknown service field", "services:\n  - name: a\n    instance: []\n", `c.yaml:3: services[0]: unknown field "instance" (valid: instances, name)`},
		{"missing name", "services:\n  - instances: []\n", "c.yaml:2: services[0].name: is required"},
		{"bad name", "services:\n  - name: Greeter\n", `c.yaml:2: services[0].name: service name "Greeter" is invalid: ` + nameRule},
		{"empty name", "services:\n  - name: \"\"\n", `c.yaml:2: services[0].name: service name "" is invalid: ` + nameRule},
		{"duplicate service", "services:\n  - name: a\n  - name: b\n  - name: a\n", `c.yaml:4: services[2].name: service "a" is already listed on line 2`},
		{"instances not a list", "services:\n  - name: a\n    instances: {id: x}\n", "c.yaml:3: services[0].instances: must be a list, not a mapping"},
		{"unknown instance field", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 1, weight: 3}\n",
			`c.yaml:4: services[0].instances[0]: unknown field "weight" (valid: address, health, id, port, version)`},
		{"duplicate instance key", "services:\n  - name: a\n    instances:\n      - id: x\n        id: y\n",
			`c.yaml:5: services[0].instances[0]: key "id" is repeated (first on line 4)`},
		{"missing id", "services:\n  - name: a\n    instances:\n      - {address: 10.0.0.1, port: 1}\n", "c.yaml:4: services[0].instances[0].id: is required"},
		{"empty id", "services:\n  - name: a\n    instances:\n      - {id: '', address: 10.0.0.1, port: 1}\n", "c.yaml:4: services[0].instances[0].id: is required"},
		{"duplicate id across services", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 1}\n  - name: b\n    instances:\n      - {id: x, address: 10.0.0.2, port: 1}\n",
			`c.yaml:7: services[1].instances[0].id: instance id "x" is already used on line 4; ids must be unique across the file`},
		{"missing address", "services:\n  - name: a\n    instances:\n      - {id: x, port: 1}\n", "c.yaml:4: services[0].instances[0].address: is required"},
		{"hostname", "services:\n  - name: a\n    instances:\n      - {id: x, address: localhost, port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "localhost" is not an IP address: an IP literal such as 10.0.0.7 or 2001:db8::7 is required (hostnames are not resolved)`},
		{"address with port", "services:\n  - name: a\n    instances:\n      - {id: x, address: '10.0.0.1:80', port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "10.0.0.1:80" is not an IP address: an IP literal such as 10.0.0.7 or 2001:db8::7 is required (hostnames are not resolved)`},
		{"zone", "services:\n  - name: a\n    instances:\n      - {id: x, address: 'fe80::1%eth0', port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "fe80::1%eth0" has an IPv6 zone, which is not supported: an IP literal without %zone is required`},
		{"unspecified", "services:\n  - name: a\n    instances:\n      - {id: x, address: 0.0.0.0, port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "0.0.0.0" is the unspecified address, which a proxy would connect to as itself: the instance's own IP is required`},
		{"unspecified IPv6", "services:\n  - name: a\n    instances:\n      - {id: x, address: '::', port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "::" is the unspecified address, which a proxy would connect to as itself: the instance's own IP is required`},
		{"unspecified IPv4 in IPv6", "services:\n  - name: a\n    instances:\n      - {id: x, address: '::ffff:0.0.0.0', port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "::ffff:0.0.0.0" is the unspecified address, which a proxy would connect to as itself: the instance's own IP is required`},
		{"multicast", "services:\n  - name: a\n    instances:\n      - {id: x, address: 224.0.0.1, port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "224.0.0.1" is a multicast address: the instance's own IP is required`},
		{"broadcast", "services:\n  - name: a\n    instances:\n      - {id: x, address: '::ffff:255.255.255.255', port: 1}\n",
			`c.yaml:4: services[0].instances[0].address: "::ffff:255.255.255.255" is the broadcast address: the instance's own IP is required`},
		{"missing port", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1}\n", "c.yaml:4: services[0].instances[0].port: is required"},
		{"port zero", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 0}\n", "c.yaml:4: services[0].instances[0].port: port 0 is out of range (valid: 1-65535)"},
		{"port too big", "services:\n  - name: a\n    instances:\n      - id: x\n        address: 10.0.0.1\n        port: 65536\n", "c.yaml:6: services[0].instances[0].port: port 65536 is out of range (valid: 1-65535)"},
		{"port negative", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: -1}\n", "c.yaml:4: services[0].instances[0].port: port -1 is out of range (valid: 1-65535)"},
		{"port string", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: '80'}\n", "c.yaml:4: services[0].instances[0].port: must be an integer, not a string"},
		// YAML reads a leading 0 as octal: 0100 was port 64, with no word.
		{"port octal", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 0100}\n", "c.yaml:4: services[0].instances[0].port: 0100 has a leading zero, which YAML reads as octal: write the decimal number without it"},
		{"port leading zero", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 08080}\n", "c.yaml:4: services[0].instances[0].port: 08080 has a leading zero, which YAML reads as octal: write the decimal number without it"},
		{"bad version", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 1, version: 'v 2'}\n",
			`c.yaml:4: services[0].instances[0].version: version "v 2" is invalid: ` + versionRule},
		{"bad health", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 1, health: ok}\n",
			`c.yaml:4: services[0].instances[0].health: unknown health "ok" (valid: passing, warning, critical, maintenance)`},
		{"health not a string", "services:\n  - name: a\n    instances:\n      - {id: x, address: 10.0.0.1, port: 1, health: [passing]}\n",
			`c.yaml:4: services[0].instances[0].health: must be a string, not a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tt.want)
			}
			var ye *yamlfile.Error
			if !errors.As(err, &ye) {
				t.Errorf("error %T is not a *yamlfile.Error", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
