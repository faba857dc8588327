package audit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestLogInjectionIsEscaped(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	l := MustLog(t, NewMemoryStore(), c)
	hostile := Entry{
		Actor:  "bob\n2025-03-01T09:00:00Z tenant=tenant-a actor=account:1 action=role_changed target=bob",
		Action: ActionSignInFailed,
		Target: "\x1b[2J\x1b[31mroot\x1b[0m\r",
		Detail: map[string]string{
			"user_agent": "curl/8\r\nX-Forwarded-For: 10.0.0.1",
			"username":   "admin\u202e\u2066txt.exe\u2028\u0085",
			"raw":        "bad utf8 \xff\xfe end",
		},
	}
	idx, _, err := l.Append(ctx, "tenant-a", hostile)
	if err != nil {
		t.Fatalf("Append(hostile) = %v; user-controlled text must be escaped, not refused", err)
	}
	es, err := l.Entries(ctx, "tenant-a", idx, idx+1)
	if err != nil || len(es) != 1 {
		t.Fatal(err)
	}
	e := es[0]
	for _, s := range append([]string{e.Actor, e.Target, e.String()}, e.Detail["user_agent"], e.Detail["username"], e.Detail["raw"]) {
		for _, r := range s {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u202e' || r == '\u2066' || r == unicode.ReplacementChar {
				t.Fatalf("stored text %q contains %U", s, r)
			}
		}
	}
	if !strings.HasPrefix(e.Actor, `bob\x0a2025-03-01`) {
		t.Fatalf("Actor = %q, want the newline escaped as \\x0a", e.Actor)
	}
	if e.Target != `\x1b[2J\x1b[31mroot\x1b[0m\x0d` {
		t.Fatalf("Target = %q, want ANSI escapes made visible", e.Target)
	}
	if e.Detail["username"] != `admin\u202e\u2066txt.exe\u2028\u0085` || e.Detail["raw"] != `bad utf8 \xff\xfe end` {
		t.Fatalf("Detail = %q", e.Detail)
	}
	if strings.Count(e.String(), "\n") != 0 {
		t.Fatalf("String() = %q spans lines", e.String())
	}
	if _, err := l.Verify(ctx, "tenant-a", nil); err != nil {
		t.Fatal(err)
	}

	// The tenant id is the program's, not the user's: refused, not escaped.
	for _, tenant := range []string{"", "a\nb", "a b", "\x1b[31m", strings.Repeat("t", MaxTenantLen+1)} {
		if _, _, err := l.Append(ctx, tenant, Entry{Actor: "x", Action: ActionSignIn}); err == nil {
			t.Errorf("Append(tenant %q) = nil error", tenant)
		}
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"Zoë 日本 🔑 e\u0301", "Zoë 日本 🔑 e\u0301"},
		{"a\nb", `a\x0ab`},
		{"tab\there", `tab\x09here`},
		{"\x00\x7f", `\x00\x7f`},
		{"\u0085\u009b", `\u0085\u009b`},
		{"\u2028\u2029", `\u2028\u2029`},
		{"\u202a\u202e\u2066\u2069\u200e\u061c", `\u202a\u202e\u2066\u2069\u200e\u061c`},
		{"\xff", `\xff`},
		{"family 👩\u200d👩\u200d👧", "family 👩\u200d👩\u200d👧"}, // ZWJ is not a control
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := Sanitize(Sanitize(tt.in)); got != Sanitize(tt.in) {
			t.Errorf("Sanitize is not idempotent on %q", tt.in)
		}
	}
}

func TestLongFieldsAreTruncated(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	l := MustLog(t, NewMemoryStore(), c)
	long := strings.Repeat("é", 10000)
	idx, _, err := l.Append(ctx, "tenant-a", Entry{Actor: long, Action: ActionSignInFailed, Target: long, Detail: map[string]string{"username": long}})
	if err != nil {
		t.Fatal(err)
	}
	es, _ := l.Entries(ctx, "tenant-a", idx, idx+1)
	e := es[0]
	if len(e.Actor) > MaxActorLen || len(e.Target) > MaxTargetLen || len(e.Detail["username"]) > MaxDetailLen ||
		!strings.HasSuffix(e.Actor, truncMark) {
		t.Fatalf("lengths %d %d %d, want truncated and marked", len(e.Actor), len(e.Target), len(e.Detail["username"]))
	}
}

func TestRedactionGuard(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: t0}
	l := MustLog(t, NewMemoryStore(), c)
	refusedKeys := []string{"password", "new_password", "old_passwd", "passphrase", "pwd", "pin",
		"secret", "client_secret", "token", "access_token", "refresh_token", "id_token", "api_key",
		"apikey", "key", "private_key", "signing_key", "credentials", "cookie", "set_cookie",
		"authorization", "otp", "totp_code", "recovery_code", "code", "session", "session_id",
		"password_hash", "salt", "jwt", "bearer"}
	for _, k := range refusedKeys {
		_, _, err := l.Append(ctx, "tenant-a", Entry{Actor: "account:1", Action: ActionSignIn, Detail: map[string]string{k: "x"}})
		var re *RedactionError
		if !errors.As(err, &re) || !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("Append(detail %q) = %v, want a *RedactionError", k, err)
		}
	}
	allowedKeys := []string{"token_id", "refresh_token_id", "token_type", "key_id", "old_key_id",
		"new_key_id", "old_kid", "scope", "ip", "user_agent", "reason", "role", "old_role",
		"method", "client_id", "grant_id", "monkey", "keyboard_layout", "subject"}
	for _, k := range allowedKeys {
		if _, _, err := l.Append(ctx, "tenant-a", Entry{Actor: "account:1", Action: ActionSignIn, Detail: map[string]string{k: "x"}}); err != nil {
			t.Errorf("Append(detail %q) = %v, want nil", k, err)
		}
	}
	refusedValues := []string{
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		"$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
		"Bearer ya29.a0AfH6SMBx3",
		"Basic dXNlcjpwYXNz",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
		"-----BEGIN PRIVATE KEY-----\nMIIE",
	}
	for _, v := range refusedValues {
		if _, _, err := l.Append(ctx, "tenant-a", Entry{Actor: "account:1", Action: ActionSignIn, Detail: map[string]string{"note": v}}); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("Append(value %.12q) = %v, want refused", v, err)
		}
	}
	for _, v := range []string{"basic plan", "bearer of bad news", "Eyjafjallajökull"} {
		if _, _, err := l.Append(ctx, "tenant-a", Entry{Actor: "account:1", Action: ActionSignIn, Detail: map[string]string{"note": v}}); err != nil {
			t.Errorf("Append(value %q) = %v, want nil", v, err)
		}
	}
	// Malformed keys and unknown actions are programming errors: refused.
	for _, e := range []Entry{
		{Actor: "a", Action: "made_up"},
		{Actor: "", Action: ActionSignIn},
		{Actor: "a", Action: ActionSignIn, Detail: map[string]string{"Bad-Key": "x"}},
		{Actor: "a", Action: ActionSignIn, Detail: map[string]string{"with\nnewline": "x"}},
		{Actor: "a", Action: ActionSignIn, Tenant: "tenant-b"},
	} {
		if _, _, err := l.Append(ctx, "tenant-a", e); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("Append(%+v) = %v, want ErrInvalidEntry", e, err)
		}
	}
	if _, err := l.Verify(ctx, "tenant-a", nil); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeEntryIsStrict(t *testing.T) {
	e, err := prepare(Entry{Seq: 4, Time: t0, Tenant: "tenant-a", Actor: "account:1", Action: ActionExport, Detail: map[string]string{"format": "json"}})
	if err != nil {
		t.Fatal(err)
	}
	e.salt = make([]byte, saltSize)
	good, err := encode(e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeEntry(good)
	if err != nil || back.Seq != 4 || back.Actor != "account:1" || back.Detail["format"] != "json" || !back.Time.Equal(t0) {
		t.Fatalf("DecodeEntry(encode(e)) = %+v, %v", back, err)
	}
	s := string(good)
	for _, bad := range []string{
		s + " ",
		s + "{}",
		" " + s,
		strings.Replace(s, `"v":1`, `"v":2`, 1),
		strings.Replace(s, `"seq":4,`, `"seq":4,"extra":1,`, 1),
		strings.Replace(s, `"seq":4`, `"seq":-4`, 1),
		strings.Replace(s, `"seq":4`, `"seq":4.0`, 1),
		strings.Replace(s, `"2025-03-01T09:00:00Z"`, `"2025-03-01T10:00:00+01:00"`, 1),
		strings.Replace(s, `"export"`, `"exfiltrate"`, 1),
		strings.Replace(s, `"account:1"`, `"account:1\n"`, 1),
		strings.Replace(s, `"format":"json"`, `"password":"hunter2"`, 1),
		strings.Replace(s, `{"format":"json"}`, `{"format":"json","format":"csv"}`, 1),
		strings.Replace(s, `"actor"`, `"Actor"`, 1),
		strings.Replace(s, `"salt":"AAAAAAAAAAAAAAAAAAAAAA"`, `"salt":"AAAA"`, 1),
	} {
		if _, err := DecodeEntry([]byte(bad)); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("DecodeEntry(%s) = %v, want ErrInvalidEntry", bad, err)
		}
	}
}

// FuzzDecodeEntry: DecodeEntry never panics, and whatever it accepts re-encodes to the same
// bytes with nothing unescaped in it.
func FuzzDecodeEntry(f *testing.F) {
	e, _ := prepare(Entry{Seq: 1, Time: t0, Tenant: "t", Actor: "account:1", Action: ActionSignIn, Target: "x", Detail: map[string]string{"ip": "192.0.2.1"}})
	e.salt = make([]byte, saltSize)
	good, _ := encode(e)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"v":1,"seq":0,"time":"2025-01-01T00:00:00Z","tenant":"t","actor":"a\\x0a","action":"sign_in","target":"","detail":{},"salt":"AAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := DecodeEntry(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Fatalf("DecodeEntry error %v is not ErrInvalidEntry", err)
			}
			return
		}
		again, err := encode(e)
		if err != nil || string(again) != string(body) {
			t.Fatalf("DecodeEntry accepted non-canonical %q", body)
		}
		for _, s := range []string{e.Tenant, e.Actor, e.Target, e.String()} {
			if Sanitize(s) != s {
				t.Fatalf("DecodeEntry accepted unescaped text %q", s)
			}
		}
		if !e.Action.Valid() {
			t.Fatalf("DecodeEntry accepted action %q", e.Action)
		}
	})
}
