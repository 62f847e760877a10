package yamlfile

import (
	"fmt"
	"regexp"
)

// The naming rules that the catalog and the policy files share, so that every
// name a policy refers to can exist in the catalog. Service names are DNS
// labels because they become Envoy cluster names and xds:/// authorities.
const (
	ServiceNamePattern = `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	VersionPattern     = `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`
)

var (
	serviceNameRE = regexp.MustCompile(ServiceNamePattern)
	versionRE     = regexp.MustCompile(VersionPattern)
)

// CheckServiceName returns an error saying what is valid if s is not a
// service name.
func CheckServiceName(s string) error {
	if !serviceNameRE.MatchString(s) {
		return fmt.Errorf("service name %q is invalid: must be 1-63 lower-case letters, digits or '-', not starting or ending with '-' (%s)", s, ServiceNamePattern)
	}
	return nil
}

// CheckVersion returns an error saying what is valid if s is not a version.
func CheckVersion(s string) error {
	if !versionRE.MatchString(s) {
		return fmt.Errorf("version %q is invalid: must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (%s)", s, VersionPattern)
	}
	return nil
}
