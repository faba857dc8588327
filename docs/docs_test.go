// Package docs checks that docs/protocol.md keeps up with the code: every
// WebSocket message type, every error code and every HTTP route must be
// documented, documented limits must match the constants they name, and the
// examples must still parse. Adding a message, code or route without
// documenting it fails this suite.
//
// The examples themselves are produced by running them: see
// docs/examples (go test ./docs/examples -run TestExamples -write).
package docs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

const docPath = "protocol.md"

// line is one line of the doc outside fenced code blocks.
type line struct {
	n    int    // 1-based line number
	text string // the line
	sect string // the enclosing level-2 heading ("## …"), without the hashes
}

type doc struct {
	raw    string
	lines  []line // prose, headings and tables
	blocks []block
	tables []table
}

// table is a Markdown table: its header cells and its rows.
type table struct {
	header []string
	rows   []row
}

type row struct {
	n     int
	cells []string
}

// table returns the rows of every table whose first header cell is name.
func (d *doc) table(name string) []row {
	var out []row
	for _, tb := range d.tables {
		if len(tb.header) > 0 && tb.header[0] == name {
			out = append(out, tb.rows...)
		}
	}
	return out
}

// block is a fenced code block.
type block struct {
	n    int // line number of the opening fence
	lang string
	body string
}

func load(t *testing.T) *doc {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s: %v", docPath, err)
	}
	d := &doc{raw: string(b)}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	var (
		sect  string
		cur   *block
		inBuf strings.Builder
	)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.HasPrefix(text, "```") {
			if cur == nil {
				cur = &block{n: n, lang: strings.TrimSpace(strings.TrimPrefix(text, "```"))}
				inBuf.Reset()
			} else {
				cur.body = inBuf.String()
				d.blocks = append(d.blocks, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			inBuf.WriteString(text)
			inBuf.WriteByte('\n')
			continue
		}
		if strings.HasPrefix(text, "## ") {
			sect = strings.TrimSpace(strings.TrimPrefix(text, "## "))
		}
		d.lines = append(d.lines, line{n: n, text: text, sect: sect})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", docPath, cur.n)
	}
	var tb *table
	for _, l := range d.lines {
		if !strings.HasPrefix(strings.TrimSpace(l.text), "|") {
			tb = nil
			continue
		}
		c := cells(l.text)
		switch {
		case tb == nil:
			d.tables = append(d.tables, table{header: c})
			tb = &d.tables[len(d.tables)-1]
		case c != nil:
			tb.rows = append(tb.rows, row{n: l.n, cells: c})
		}
	}
	return d
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

func spans(s string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// cells splits a Markdown table row into trimmed cells; nil if l is not a
// table row or is a separator row.
func cells(l string) []string {
	l = strings.TrimSpace(l)
	if !strings.HasPrefix(l, "|") {
		return nil
	}
	parts := strings.Split(strings.Trim(l, "|"), "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	if len(parts) > 0 && strings.Trim(parts[0], ":-") == "" {
		return nil // | --- | --- |
	}
	return parts
}

// named reports the names the doc documents, with where: a backquoted name
// in a heading, or in the first cell of a table row.
func (d *doc) named() map[string]int {
	out := map[string]int{}
	for _, l := range d.lines {
		var src string
		switch {
		case strings.HasPrefix(l.text, "#"):
			src = l.text
		default:
			if c := cells(l.text); len(c) > 0 {
				src = c[0]
			}
		}
		for _, s := range spans(src) {
			if _, ok := out[s]; !ok {
				out[s] = l.n
			}
		}
	}
	return out
}

func TestMessageTypesDocumented(t *testing.T) {
	d := load(t)
	// Each client message has its own section: a level-3 heading naming it
	// under "Client messages".
	headed := map[string]bool{}
	for _, l := range d.lines {
		if l.sect == "Client messages" && strings.HasPrefix(l.text, "### ") {
			for _, name := range spans(l.text) {
				headed[name] = true
			}
		}
	}
	for _, typ := range gateway.RequestTypes() {
		if !headed[typ] {
			t.Errorf("client message type %q is not documented in docs/%s: add a section \"### `%s`\" under \"## Client messages\"", typ, docPath, typ)
		}
	}
	// And the other way round: the doc documents no message that does not
	// exist (level-3 headings under "Client messages", rows of the table of
	// server frames).
	req := set(gateway.RequestTypes())
	for _, l := range d.lines {
		if l.sect != "Client messages" || !strings.HasPrefix(l.text, "### ") {
			continue
		}
		for _, name := range spans(l.text) {
			if !req[name] {
				t.Errorf("%s:%d: \"Client messages\" documents %q, which gateway.RequestTypes() does not list", docPath, l.n, name)
			}
		}
	}
	resp := set(gateway.ResponseTypes())
	rows := d.table("Server frame")
	if len(rows) == 0 {
		t.Errorf("docs/%s has no table of server frames (first header cell \"Server frame\")", docPath)
	}
	inTable := map[string]bool{}
	for _, r := range rows {
		for _, name := range spans(r.cells[0]) {
			inTable[name] = true
			if !resp[name] {
				t.Errorf("%s:%d: the table of server frames lists %q, which gateway.ResponseTypes() does not", docPath, r.n, name)
			}
		}
	}
	for _, typ := range gateway.ResponseTypes() {
		if !inTable[typ] {
			t.Errorf("server frame type %q is not documented in docs/%s: add a row \"| `%s` | … |\" to the table of server frames (first header cell \"Server frame\")", typ, docPath, typ)
		}
	}
}

func TestErrorCodesDocumented(t *testing.T) {
	d := load(t)
	rows := d.table("Code")
	documented := map[string]bool{}
	known := map[string]bool{}
	for _, c := range engine.AllCodes() {
		known[string(c)] = true
	}
	for _, r := range rows {
		for _, name := range spans(r.cells[0]) {
			documented[name] = true
			if !known[name] {
				t.Errorf("%s:%d: the table of error codes lists %q, which engine.AllCodes() does not", docPath, r.n, name)
			}
		}
	}
	for _, c := range engine.AllCodes() {
		if !documented[string(c)] {
			t.Errorf("error code %q is not documented in docs/%s: add a row \"| `%s` | … |\" to the table of error codes (first header cell \"Code\")", c, docPath, c)
		}
	}
}

// permNames are the names the route table uses for permissions.
var permNames = map[gateway.Permission]string{0: "none", gateway.PermBook: "book", gateway.PermStaff: "staff",
	gateway.PermAdmin: "admin", gateway.PermOperator: "operator"}

func TestRoutesDocumented(t *testing.T) {
	d := load(t)
	// The gateway's own routes and those slotd mounts beside them
	// (accounts, OAuth 2, privacy): every one needs a section and a row.
	routes := gateway.New(gateway.Config{Auth: gateway.NewOperatorToken("docs"), Routes: extraRoutes(t)}).Routes()
	if len(routes) == 0 {
		t.Fatal("gateway.Server.Routes() is empty")
	}
	all := d.named()
	headed := map[string]bool{}
	for _, l := range d.lines {
		if strings.HasPrefix(l.text, "### ") {
			for _, name := range spans(l.text) {
				headed[name] = true
			}
		}
	}
	perm := map[string]gateway.Permission{}
	for _, r := range routes {
		perm[r.Pattern] = r.Perm
		if !headed[r.Pattern] {
			t.Errorf("route %q is not documented in docs/%s: add a section \"### `%s`\" (and a row to the route table)", r.Pattern, docPath, r.Pattern)
		}
	}
	// Headings and table rows that name a route must name a real one.
	for name, n := range all {
		if _, ok := perm[name]; looksLikeRoute(name) && !ok {
			t.Errorf("%s:%d: %q looks like a route but gateway.Server.Routes() has no such pattern", docPath, n, name)
		}
	}
	// The route table (first header cell "Route") states each route's
	// permission; it must be the one the router enforces.
	seenRow := map[string]bool{}
	for _, r := range d.table("Route") {
		if len(r.cells) < 2 {
			t.Errorf("%s:%d: route table row without a permission cell", docPath, r.n)
			continue
		}
		for _, name := range spans(r.cells[0]) {
			p, ok := perm[name]
			if !ok {
				continue // reported above
			}
			seenRow[name] = true
			if got, want := strings.Trim(r.cells[1], "`* "), permNames[p]; got != want {
				t.Errorf("%s:%d: route %q: the table says permission %q, the router requires %q", docPath, r.n, name, got, want)
			}
		}
	}
	for _, r := range routes {
		if !seenRow[r.Pattern] {
			t.Errorf("route %q has no row in the route table of docs/%s (first header cell \"Route\"): add \"| `%s` | %s | … |\"", r.Pattern, docPath, r.Pattern, permNames[r.Perm])
		}
	}
}

func looksLikeRoute(s string) bool {
	for _, m := range []string{"GET ", "POST ", "PUT ", "DELETE ", "PATCH ", "HEAD "} {
		if strings.HasPrefix(s, m+"/") {
			return true
		}
	}
	return false
}

// TestLimits checks each row of a table whose last cell names a constant:
// the second cell must start with the constant's value.
func TestLimits(t *testing.T) {
	d := load(t)
	consts := map[string]int{
		"gateway.ProtocolVersion":    gateway.ProtocolVersion,
		"gateway.MaxIDLen":           gateway.MaxIDLen,
		"engine.MaxHoldTTLSec":       engine.MaxHoldTTLSec,
		"engine.DefaultHoldTTLSec":   engine.DefaultHoldTTLSec,
		"engine.MaxAvailabilityDays": engine.MaxAvailabilityDays,
		"engine.MaxBusyBlocks":       engine.MaxBusyBlocks,
		"engine.MaxNameLen":          engine.MaxNameLen,
		"engine.MaxResources":        engine.MaxResources,
		"engine.MaxServices":         engine.MaxServices,
		"engine.MaxCapacity":         engine.MaxCapacity,
		"engine.MaxRangesPerDay":     engine.MaxRangesPerDay,
		"engine.MaxOverrides":        engine.MaxOverrides,
		"engine.MaxHolidays":         engine.MaxHolidays,
		"engine.MaxDurationMin":      engine.MaxDurationMin,
		"engine.MaxBufferMin":        engine.MaxBufferMin,
		"engine.MaxHorizonDays":      engine.MaxHorizonDays,
	}
	seen := map[string]bool{}
	num := regexp.MustCompile(`^[0-9][0-9 ,]*`)
	for _, l := range d.lines {
		c := cells(l.text)
		if len(c) < 3 {
			continue
		}
		for _, name := range spans(c[len(c)-1]) {
			want, ok := consts[name]
			if !ok {
				continue
			}
			seen[name] = true
			m := num.FindString(c[1])
			got, err := strconv.Atoi(strings.NewReplacer(" ", "", ",", "").Replace(m))
			if err != nil || got != want {
				t.Errorf("%s:%d: %s is %d, the doc says %q", docPath, l.n, name, want, c[1])
			}
		}
	}
	for name := range consts {
		if !seen[name] {
			t.Errorf("docs/%s has no limits row naming `%s`", docPath, name)
		}
	}
	if !strings.Contains(d.raw, "`"+gateway.Subprotocol+"`") {
		t.Errorf("docs/%s does not name the subprotocol `%s`", docPath, gateway.Subprotocol)
	}
}

var exampleOpen = regexp.MustCompile(`^<!-- example ([a-z0-9-]+) -->$`)

// TestExamples checks the example regions docs/examples fills in: well
// formed, uniquely named, each holding one code block whose JSON parses,
// and whose server frames carry known types and error codes.
func TestExamples(t *testing.T) {
	d := load(t)
	names := map[string]bool{}
	open := ""
	for _, l := range d.lines {
		switch m := exampleOpen.FindStringSubmatch(l.text); {
		case m != nil:
			if open != "" {
				t.Errorf("%s:%d: example %s opens inside example %s", docPath, l.n, m[1], open)
			}
			if names[m[1]] {
				t.Errorf("%s:%d: example %s appears twice", docPath, l.n, m[1])
			}
			names[m[1]], open = true, m[1]
		case l.text == "<!-- /example -->":
			if open == "" {
				t.Errorf("%s:%d: example end without start", docPath, l.n)
			}
			open = ""
		}
	}
	if open != "" {
		t.Errorf("example %s is never closed", open)
	}
	if len(names) == 0 {
		t.Fatal("no examples found")
	}
	for _, b := range d.blocks {
		switch b.lang {
		case "jsonc":
			checkFrames(t, b)
		case "json":
			if !json.Valid([]byte(b.body)) {
				t.Errorf("%s:%d: json block does not parse", docPath, b.n)
			}
		}
	}
}

// checkFrames parses a jsonc block of frames: "//" comment lines, then JSON
// values. A comment "// server → …" says the following frames are the
// server's.
func checkFrames(t *testing.T, b block) {
	t.Helper()
	resp := set(gateway.ResponseTypes())
	codes := map[string]bool{}
	for _, c := range engine.AllCodes() {
		codes[string(c)] = true
	}
	var chunks []struct {
		server bool
		json   string
		n      int
	}
	server := false
	var cur strings.Builder
	start := 0
	flush := func() {
		if strings.TrimSpace(cur.String()) != "" {
			chunks = append(chunks, struct {
				server bool
				json   string
				n      int
			}{server, cur.String(), start})
		}
		cur.Reset()
	}
	for i, l := range strings.Split(b.body, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "//") {
			flush()
			if strings.Contains(l, "server →") {
				server = true
			} else if strings.Contains(l, "→ server") {
				server = false
			}
			start = b.n + 1 + i + 1
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	flush()
	for _, c := range chunks {
		dec := json.NewDecoder(strings.NewReader(c.json))
		for {
			var f struct {
				Type string `json:"type"`
				Code string `json:"code"`
			}
			err := dec.Decode(&f)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("%s:%d: frame does not parse: %v", docPath, c.n, err)
				break
			}
			if !c.server {
				continue
			}
			if !resp[f.Type] {
				t.Errorf("%s:%d: server frame of unknown type %q", docPath, c.n, f.Type)
			}
			if f.Code != "" && !codes[f.Code] {
				t.Errorf("%s:%d: server frame with unknown code %q", docPath, c.n, f.Code)
			}
		}
	}
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// TestHelpers pins the table and span parsing the checks rely on.
func TestHelpers(t *testing.T) {
	if got := cells("| `a` | b |"); fmt.Sprint(got) != "[`a` b]" {
		t.Errorf("cells: %q", got)
	}
	if got := cells("|---|:--|"); got != nil {
		t.Errorf("separator row: %q", got)
	}
	if got := spans("### `GET /v1/ws` and `ping`"); fmt.Sprint(got) != "[GET /v1/ws ping]" {
		t.Errorf("spans: %q", got)
	}
}
