package envoy

import (
	"bytes"
	"encoding/json"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// YAML renders m as block-style YAML through its protojson form, so Any fields
// carry their "@type". Fields keep protojson's order (by field number, map keys
// sorted) and protojson's random whitespace is gone, so the output is stable.
// Any types must be registered: importing this package registers every type
// its builders put in an Any.
func YAML(m proto.Message) ([]byte, error) {
	js, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("render %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	blockStyle(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("render %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blockStyle drops the flow and quoting styles that parsing JSON gave n. The
// encoder still quotes strings that YAML 1.2 would read as another type, but
// Envoy reads YAML with yaml-cpp, which also reads YAML 1.1's booleans (on,
// Yes, N...): Envoy would take a node id "on" for a bool and reject the
// bootstrap. Those strings keep quotes, single ones as for all weir writes.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && yaml11Bool(n.Value) {
		n.Style = yaml.SingleQuotedStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// yaml11Bool reports whether YAML 1.1 (and yaml-cpp) reads s, unquoted, as a
// boolean: y, yes, true, on, n, no, false or off, in lower case, upper case
// or capitalised.
func yaml11Bool(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
		"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return true
	}
	return false
}

// BootstrapYAML renders b as an Envoy bootstrap file.
func BootstrapYAML(b *bootstrapv3.Bootstrap) ([]byte, error) {
	return YAML(b)
}

// ParseBootstrapYAML reads a bootstrap file such as BootstrapYAML writes.
// Unknown fields are errors.
func ParseBootstrapYAML(data []byte) (*bootstrapv3.Bootstrap, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	b := new(bootstrapv3.Bootstrap)
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return b, nil
}
