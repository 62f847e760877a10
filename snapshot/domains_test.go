package snapshot

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestDuplicateDomainsInOneVirtualHost covers route configurations with one
// virtual host, which duplicateDomains checks without a map while its
// domains are few, and with one otherwise.
func TestDuplicateDomainsInOneVirtualHost(t *testing.T) {
	for _, n := range []int{3, fewDomains, fewDomains + 1, 3 * fewDomains} {
		domains := []string{"a", "b", "a"}
		for i := len(domains); i < n; i++ {
			domains = append(domains, fmt.Sprintf("d%d", i))
		}
		domains = append(domains, "b")
		var got []string
		for _, err := range duplicateDomains("rc", &routev3.VirtualHost{Name: "vh", Domains: domains}) {
			got = append(got, err.Error())
		}
		want := []string{
			`route configuration "rc": domain "a" is in virtual hosts "vh" and "vh"`,
			`route configuration "rc": domain "b" is in virtual hosts "vh" and "vh"`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%d domains: got\n%s\nwant\n%s", len(domains), strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestValidateVirtualHostAgreesWithItsValidator checks that
// validateVirtualHost accepts exactly the virtual hosts ValidateAll
// accepts, and leaves their domains as they were.
func TestValidateVirtualHostAgreesWithItsValidator(t *testing.T) {
	for _, domains := range [][]string{
		nil,
		{},
		{"greeter"},
		{"greeter", "greeter.service.consul", "greeter:8080", "*"},
		{"", "greeter"},
		{"greeter", ""},
		{"bad\x00", "greeter"},
		{"greeter", "bad\nline"},
		{"greeter", "a", "carriage\rreturn"},
		{"greeter", "invalid-utf8-\xff", "ünïcode"},
	} {
		for _, name := range []string{"vh", ""} { // an empty name is invalid
			vh := &routev3.VirtualHost{Name: name, Domains: slices.Clone(domains)}
			want := vh.ValidateAll()
			got := validateVirtualHost(vh)
			if (got == nil) != (want == nil) {
				t.Errorf("name %q, domains %q: validateVirtualHost says %v, ValidateAll %v", name, domains, got, want)
			}
			if !slices.Equal(vh.Domains, domains) || (domains != nil) != (vh.Domains != nil) {
				t.Errorf("name %q: validateVirtualHost left domains %q, were %q", name, vh.Domains, domains)
			}
		}
	}
}
