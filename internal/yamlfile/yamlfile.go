// Package yamlfile decodes the YAML files that operators write for weir: the
// discovery catalog and the policy files. Both formats share strict,
// line-numbered decoding, so it lives here once: unknown and repeated fields
// are errors rather than silently ignored, and every error names the file, the
// line and the field, and says what would have been valid. The two formats
// also share their naming rules (names.go) and the way their files are
// watched for edits (watch.go).
//
// Decoding stops at the first problem in a file; callers that load many files
// join the errors of the files.
package yamlfile

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error is a problem in an operator's file, located as precisely as the YAML
// allows.
type Error struct {
	File  string
	Line  int    // 1-based; 0 when unknown
	Field string // dotted path such as services[0].instances[1].port or weights.v2; "" for the document
	Msg   string
}

// Error formats e as FILE:LINE: FIELD: MSG, leaving out empty parts.
func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		if loc == "" {
			loc = "line " + strconv.Itoa(e.Line)
		} else {
			loc += ":" + strconv.Itoa(e.Line)
		}
	}
	parts := make([]string, 0, 3)
	for _, p := range []string{loc, e.Field, e.Msg} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ": ")
}

// Parse parses data, the contents of file, which must hold exactly one YAML
// document whose root is a mapping, and returns that root.
func Parse(file string, data []byte) (Value, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Value{}, &Error{File: file, Msg: "file is empty, want a YAML mapping"}
		}
		return Value{}, syntaxError(file, data, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return Value{}, syntaxError(file, data, err)
	default:
		return Value{}, &Error{File: file, Line: next.Line, Msg: "a second YAML document (after ---) is not allowed; put one document per file"}
	}
	root := Value{File: file, Node: resolve(doc.Content[0])}
	root.Line = root.Node.Line
	switch {
	case root.Node.Tag == "!!null" && root.Node.Kind == yaml.ScalarNode:
		return Value{}, &Error{File: file, Line: root.Line, Msg: "file is empty, want a YAML mapping"}
	case root.Node.Kind != yaml.MappingNode:
		return Value{}, root.Errorf("the document must be a mapping, not %s", root.Kind())
	}
	return root, nil
}

// yamlLine matches the location prefix of the yaml library's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError turns an error of the yaml library in data, the contents of
// file, into an *Error for file. The library reads bytes that are not
// UTF-8, or characters YAML does not allow, before it counts lines, so its
// errors for them have no line: the line and column of the first such
// character are found here.
func syntaxError(file string, data []byte, err error) *Error {
	msg := err.Error()
	e := &Error{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	e.Msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	if e.Line == 0 {
		if line, column, ok := firstUnreadable(data); ok {
			e.Line = line
			e.Msg += " at column " + strconv.Itoa(column)
		}
	}
	return e
}

// firstUnreadable returns the line and column (both 1-based, the column
// counted in characters) of data's first byte that is not UTF-8 or starts
// a character that YAML does not allow in a file, and whether there is
// one. Data in UTF-16, which the yaml library decodes when it starts with
// a byte order mark, is not looked at.
func firstUnreadable(data []byte) (line, column int, ok bool) {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return 0, 0, false
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 || !printable(r) {
			lineStart := bytes.LastIndexByte(data[:i], '\n') + 1
			return 1 + bytes.Count(data[:lineStart], []byte("\n")), 1 + utf8.RuneCount(data[lineStart:i]), true
		}
		i += size
	}
	return 0, 0, false
}

// printable reports whether YAML 1.2 allows r in a file (its c-printable).
func printable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r < 0x20, r == 0x7F:
		return false
	case r < 0x7F:
		return true
	}
	return r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// resolve follows aliases (*name) to the node they stand for. A chain of
// aliases is not possible in YAML, but a bound keeps a malformed tree from
// looping.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// Join returns the path of field key inside the mapping at path parent.
func Join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Index returns the path of item i of the list at path parent.
func Index(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}
