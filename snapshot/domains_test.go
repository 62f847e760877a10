package snapshot

import (
	"fmt"
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
		rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: domains}}}
		var got []string
		for _, err := range duplicateDomains(rc) {
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
