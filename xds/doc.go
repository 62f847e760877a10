// Package xds serves weir's snapshots to Envoy sidecars and proxyless gRPC
// clients over ADS, and records what each of them has applied.
//
//	discovery.Model ─┐
//	policy.Set ──────┴─▶ Publisher ──(debounce)──▶ snapshot.Build ──▶ Cache ──▶ ADS streams
//	                                                                   ▲            │
//	                                                         Tracker ◀─┴── ACK / NACK
//
// The Publisher builds a snapshot when its inputs change and publishes it to
// the Cache only when it is valid and different from the one being served.
// The Cache shares one prepared snapshot among all proxies of a class, and
// answers each watch only when that proxy's view changed. The Tracker
// records, per stream and resource type, what was sent, ACKed and NACKed.
package xds
