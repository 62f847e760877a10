package snapshot

import "fmt"

// Report is what Build noticed that an operator should know about. None of it
// stops a push: traffic has already been routed around the problem.
// Every list is sorted.
type Report struct {
	// Unserved lists versions a policy wanted that have no serving instances;
	// their share went to the service's other versions.
	Unserved []ServiceVersion
	// UnknownServices lists services with a policy that discovery does not know.
	UnknownServices []string
	// NoServing lists services without any serving instance: their calls fail.
	NoServing []string
	// DuplicateEndpoints lists versions with two instances at one address:port;
	// only the first (by instance ID) is an endpoint.
	DuplicateEndpoints []ServiceVersion
	// UnservedMatches lists versions that a match route sends requests to
	// but that have no serving instances: the match route is left out and
	// its requests follow the service's split.
	UnservedMatches []ServiceVersion
	// Recounted reports that a Builder's account of the names its builds
	// give and want disagreed with a full consistency check, which passed:
	// a bug in weir. The Builder counts everything anew on its next build.
	Recounted bool
}

// ServiceVersion names one version of one service.
type ServiceVersion struct {
	Service string
	Version string
}

func (sv ServiceVersion) String() string { return ClusterName(sv.Service, sv.Version) }

// add records one service's findings. Build visits services in name order,
// so the lists stay sorted.
func (r *Report) add(service string, sr serviceReport) {
	for _, v := range sr.unserved {
		r.Unserved = append(r.Unserved, ServiceVersion{service, v})
	}
	for _, v := range sr.unservedMatches {
		r.UnservedMatches = append(r.UnservedMatches, ServiceVersion{service, v})
	}
	for _, v := range sr.duplicates {
		r.DuplicateEndpoints = append(r.DuplicateEndpoints, ServiceVersion{service, v})
	}
	if sr.noServing {
		r.NoServing = append(r.NoServing, service)
	}
}

// Warnings returns one human-readable line per finding, in a stable order.
func (r Report) Warnings() []string {
	var out []string
	for _, sv := range r.Unserved {
		out = append(out, fmt.Sprintf("service %q: policy wants version %q, which has no serving instances; its share goes to the other versions", sv.Service, sv.Version))
	}
	for _, s := range r.UnknownServices {
		out = append(out, fmt.Sprintf("service %q: has a policy but discovery does not know it", s))
	}
	for _, s := range r.NoServing {
		out = append(out, fmt.Sprintf("service %q: no serving instances; its calls fail", s))
	}
	for _, sv := range r.DuplicateEndpoints {
		out = append(out, fmt.Sprintf("service %q: version %q has several instances at one address and port; they are one endpoint, healthy if any of them is", sv.Service, sv.Version))
	}
	for _, sv := range r.UnservedMatches {
		out = append(out, fmt.Sprintf("service %q: a match route wants version %q, which has no serving instances; its requests follow the split", sv.Service, sv.Version))
	}
	if r.Recounted {
		out = append(out, "snapshot: the Builder's count of resource names disagreed with a full consistency check, which passed; it counts anew on the next build (a bug in weir: please report it)")
	}
	return out
}
