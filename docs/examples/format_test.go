package examples

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// width is the column up to which a JSON value is kept on one line.
const width = 128

// jnode is a parsed JSON value that keeps the order of object keys, so that
// frames are shown exactly as the server sent them, only re-indented.
type jnode struct {
	kind byte // '{', '[' or 0 for a scalar
	keys []string
	vals []*jnode
	lit  string // scalar, as JSON text
}

func parseJSON(data []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return n, nil
}

func parseNode(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &jnode{kind: byte(v)}
		for dec.More() {
			if v == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				kb, _ := json.Marshal(k)
				n.keys = append(n.keys, string(kb))
			}
			c, err := parseNode(dec)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, c)
		}
		if _, err := dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
		return n, nil
	case json.Number:
		return &jnode{lit: v.String()}, nil
	case nil:
		return &jnode{lit: "null"}, nil
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return &jnode{lit: string(b)}, nil
	}
}

func (n *jnode) compact() string {
	switch n.kind {
	case '{':
		parts := make([]string, len(n.vals))
		for i, v := range n.vals {
			parts[i] = n.keys[i] + ": " + v.compact()
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case '[':
		parts := make([]string, len(n.vals))
		for i, v := range n.vals {
			parts[i] = v.compact()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return n.lit
}

// pretty renders n starting at column col with the given indent: on one
// line if it fits, else one member per line.
func (n *jnode) pretty(indent string, col int) string {
	return n.render(indent, col, false)
}

// render is pretty; expand forces a non-empty object or array onto several
// lines even if it would fit on one.
func (n *jnode) render(indent string, col int, expand bool) string {
	c := n.compact()
	if n.kind == 0 || len(n.vals) == 0 || (!expand && col+len(c) <= width) {
		return c
	}
	in := indent + "  "
	var b strings.Builder
	if n.kind == '{' {
		b.WriteString("{\n")
		for i, v := range n.vals {
			b.WriteString(in + n.keys[i] + ": ")
			b.WriteString(v.pretty(in, len(in)+len(n.keys[i])+2))
			if i < len(n.vals)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(indent + "}")
		return b.String()
	}
	b.WriteString("[\n")
	for i, v := range n.vals {
		b.WriteString(in + v.pretty(in, len(in)))
		if i < len(n.vals)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString(indent + "]")
	return b.String()
}

// prettyJSON re-indents a JSON document, one top-level member per line;
// anything else is returned as is.
func prettyJSON(data []byte) string {
	n, err := parseJSON(data)
	if err != nil {
		return strings.TrimRight(string(data), "\n")
	}
	return n.render("", 0, true)
}

// obj builds a JSON object with keys in the order given: obj("a", 1, "b", "x").
func obj(kv ...any) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(kv[i+1])
		if err != nil {
			panic(err)
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func TestPretty(t *testing.T) {
	in := `{"v":1,"type":"x","list":[{"a":"` + strings.Repeat("y", 60) + `","b":[1,2]},{"a":"` + strings.Repeat("z", 60) + `","b":[]}],"e":{}}`
	want := `{
  "v": 1,
  "type": "x",
  "list": [
    {"a": "` + strings.Repeat("y", 60) + `", "b": [1, 2]},
    {"a": "` + strings.Repeat("z", 60) + `", "b": []}
  ],
  "e": {}
}`
	if got := prettyJSON([]byte(in)); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(obj("b", 1, "a", []string{"x"})); got != `{"b":1,"a":["x"]}` {
		t.Fatalf("obj: %s", got)
	}
}
