package yamlfile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Value is one node of a document together with where it is: its file, its
// field path and its line. Its methods check the node's kind and report a
// mismatch as an *Error.
type Value struct {
	File string
	Path string // dotted field path; "" for the root
	// Line is the line of the field's key when the value belongs to a mapping
	// (where an operator looks for "weights:"), and the node's own line
	// otherwise.
	Line int
	Node *yaml.Node // never an alias
}

// Errorf returns an *Error located at v.
func (v Value) Errorf(format string, args ...any) *Error {
	return &Error{File: v.File, Line: v.Line, Field: v.Path, Msg: fmt.Sprintf(format, args...)}
}

// Kind describes v's node for error messages: "a mapping", "a list",
// "a string", "an integer", "a number", "a boolean", "null" or "a value".
func (v Value) Kind() string {
	switch v.Node.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch v.Node.Tag {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
	}
	return "a value"
}

// IsNull reports whether v is empty or null (as in "name:" or "name: ~").
func (v Value) IsNull() bool {
	return v.Node.Kind == yaml.ScalarNode && v.Node.Tag == "!!null"
}

// Text returns the text of a scalar as written: strings, and also integers and
// numbers, so that a version may be written 1.0. Null is "". Booleans and
// collections are errors.
func (v Value) Text() (string, error) {
	if v.IsNull() {
		return "", nil
	}
	switch v.Kind() {
	case "a string", "an integer", "a number":
		return v.Node.Value, nil
	}
	return "", v.Errorf("must be a string, not %s", v.Kind())
}

// Int returns the value of an integer, read from the text as written: the
// YAML library reads a leading 0 as octal (0100 is 64), which nobody
// writing a port means, so that is refused; 0x, 0o and 0b say what they
// are, and are read as such.
func (v Value) Int() (int64, error) {
	kind, text := v.Kind(), v.Node.Value
	if kind != "an integer" && kind != "a number" {
		return 0, v.Errorf("must be an integer, not %s", kind)
	}
	if digits := strings.TrimLeft(text, "+-"); len(digits) > 1 && digits[0] == '0' && '0' <= digits[1] && digits[1] <= '9' {
		return 0, v.Errorf("%s has a leading zero, which YAML reads as octal: write the decimal number without it", text)
	}
	n, err := strconv.ParseInt(text, 0, 64)
	if err != nil {
		return 0, v.Errorf("must be an integer, not %s", kind)
	}
	return n, nil
}

// List returns the items of a list; null is an empty list.
func (v Value) List() ([]Value, error) {
	if v.IsNull() {
		return nil, nil
	}
	if v.Node.Kind != yaml.SequenceNode {
		return nil, v.Errorf("must be a list, not %s", v.Kind())
	}
	items := make([]Value, len(v.Node.Content))
	for i, n := range v.Node.Content {
		n = resolve(n)
		items[i] = Value{File: v.File, Path: Index(v.Path, i), Line: n.Line, Node: n}
	}
	return items, nil
}

// Map is a mapping whose keys are known to be unique strings.
type Map struct {
	Value
	keys   []string // in file order
	fields map[string]Value
}

// Map returns v as a mapping with any keys, which must be unique strings.
func (v Value) Map() (Map, error) {
	if v.Node.Kind != yaml.MappingNode {
		return Map{}, v.Errorf("must be a mapping, not %s", v.Kind())
	}
	m := Map{Value: v, fields: make(map[string]Value, len(v.Node.Content)/2)}
	for i := 0; i+1 < len(v.Node.Content); i += 2 {
		k, val := resolve(v.Node.Content[i]), resolve(v.Node.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return Map{}, &Error{File: v.File, Line: k.Line, Field: v.Path, Msg: "keys must be strings, not " + (Value{Node: k}).Kind()}
		}
		if prev, dup := m.fields[k.Value]; dup {
			return Map{}, &Error{File: v.File, Line: k.Line, Field: v.Path,
				Msg: fmt.Sprintf("key %q is repeated (first on line %d)", k.Value, prev.Line)}
		}
		m.keys = append(m.keys, k.Value)
		m.fields[k.Value] = Value{File: v.File, Path: Join(v.Path, k.Value), Line: k.Line, Node: val}
	}
	return m, nil
}

// Fields returns v as a mapping whose keys must all be in valid.
func (v Value) Fields(valid ...string) (Map, error) {
	m, err := v.Map()
	if err != nil {
		return Map{}, err
	}
	return m, m.Only(valid...)
}

// Only reports the first key of m that is not in valid, listing the valid ones.
func (m Map) Only(valid ...string) error {
	for _, k := range m.keys {
		if !slices.Contains(valid, k) {
			sorted := slices.Sorted(slices.Values(valid))
			return &Error{File: m.File, Line: m.fields[k].Line, Field: m.Path,
				Msg: fmt.Sprintf("unknown field %q (valid: %s)", k, strings.Join(sorted, ", "))}
		}
	}
	return nil
}

// Keys returns the keys in the order of the file.
func (m Map) Keys() []string { return slices.Clone(m.keys) }

// Get returns the value of key.
func (m Map) Get(key string) (Value, bool) {
	v, ok := m.fields[key]
	return v, ok
}

// Require returns the value of key, which must be present and not null.
func (m Map) Require(key string) (Value, error) {
	v, ok := m.fields[key]
	if !ok {
		return Value{}, &Error{File: m.File, Line: m.Line, Field: Join(m.Path, key), Msg: "is required"}
	}
	if v.IsNull() {
		return Value{}, v.Errorf("is required")
	}
	return v, nil
}
