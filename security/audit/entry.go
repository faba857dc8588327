package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// An Action is what an entry records. Actions are a stable enum: they are only ever added,
// never renamed, because stored entries and the verifier depend on them.
type Action string

// The actions.
const (
	ActionSignIn                  Action = "sign_in"
	ActionSignInFailed            Action = "sign_in_failed"
	ActionSignOut                 Action = "sign_out"
	ActionPasswordChanged         Action = "password_changed"
	ActionMFAEnabled              Action = "mfa_enabled"
	ActionMFADisabled             Action = "mfa_disabled"
	ActionRecoveryCodeUsed        Action = "recovery_code_used"
	ActionSessionEnded            Action = "session_ended"
	ActionTokenGranted            Action = "token_granted"
	ActionTokenRevoked            Action = "token_revoked"
	ActionTokenReuseDetected      Action = "token_reuse_detected"
	ActionAccountCreated          Action = "account_created"
	ActionAccountDisabled         Action = "account_disabled"
	ActionAccountDeleted          Action = "account_deleted"
	ActionRoleChanged             Action = "role_changed"
	ActionIntegrationConnected    Action = "integration_connected"
	ActionIntegrationDisconnected Action = "integration_disconnected"
	ActionExport                  Action = "export"
	ActionErasure                 Action = "erasure"
	ActionKeyRotation             Action = "key_rotation"
	ActionAdminAction             Action = "admin_action"
	ActionRetentionPrune          Action = "retention_prune" // written by Log.Prune only
)

var actions = []Action{
	ActionSignIn, ActionSignInFailed, ActionSignOut, ActionPasswordChanged, ActionMFAEnabled,
	ActionMFADisabled, ActionRecoveryCodeUsed, ActionSessionEnded, ActionTokenGranted,
	ActionTokenRevoked, ActionTokenReuseDetected, ActionAccountCreated, ActionAccountDisabled,
	ActionAccountDeleted, ActionRoleChanged, ActionIntegrationConnected,
	ActionIntegrationDisconnected, ActionExport, ActionErasure, ActionKeyRotation,
	ActionAdminAction, ActionRetentionPrune,
}

// Actions returns every action, in a stable order.
func Actions() []Action { return append([]Action(nil), actions...) }

// Valid reports whether a is one of the actions.
func (a Action) Valid() bool {
	for _, b := range actions {
		if a == b {
			return true
		}
	}
	return false
}

// An Entry is one security event in a tenant's log.
type Entry struct {
	Seq    int64     // index in the tenant's log, from 0; set by Log.Append
	Time   time.Time // when it happened; Log.Append sets the clock's time if zero; stored in UTC
	Tenant string    // set by Log.Append to the tenant it appends to
	Actor  string    // the principal that acted: "account:42", "client:booking-app", "system"
	Action Action
	Target string            // what was acted on, if anything: "account:43", "grant:7"
	Detail map[string]string // further facts; keys match [a-z][a-z0-9_]*, no secrets

	salt []byte // random, set by Log.Append; see the package doc on retention
}

// Limits on entry fields. Longer Actor, Target and Detail values are truncated (marked with
// "…[truncated]"), so that an attacker's 1 MB user name is recorded, not refused.
const (
	MaxTenantLen  = 128
	MaxActorLen   = 256
	MaxTargetLen  = 256
	MaxDetailLen  = 1024 // per value
	MaxDetailKeys = 32
	saltSize      = 16
	truncMark     = "…[truncated]"
)

// ErrInvalidEntry classifies entries that cannot be logged or decoded.
var ErrInvalidEntry = errors.New("audit: invalid entry")

// A RedactionError says a Detail key or value looks like a secret. It matches ErrInvalidEntry.
type RedactionError struct {
	Key    string
	Reason string
}

func (e *RedactionError) Error() string {
	return fmt.Sprintf("audit: detail %q looks like a secret (%s); log an id or a fact about it instead", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidEntry) true.
func (e *RedactionError) Is(target error) bool { return target == ErrInvalidEntry }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEntry}, args...)...)
}

// Sanitize returns s with every character that could forge a line or control a terminal
// escaped as visible text: ASCII and C1 control characters (newline, carriage return, escape,
// …) as \xNN or \uNNNN, the Unicode line and paragraph separators and the bidirectional-text
// controls (used to make text display in another order than stored) as \uNNNN, and each byte of
// invalid UTF-8 as \xNN. Sanitize(Sanitize(s)) == Sanitize(s).
func Sanitize(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func clean(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r) {
			return false
		}
		i += size
	}
	return true
}

func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(truncMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncMark
}

var detailKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Words in a detail key that name a secret, and the words that, last in a key after "token" or
// "key", name something about a secret (its id, type, expiry) rather than the secret.
var (
	secretSubstrings = []string{"password", "passwd", "passphrase", "secret", "token", "apikey",
		"privatekey", "credential", "cookie", "authorization", "bearer", "recoverycode",
		"authcode", "otpcode", "mfacode", "verificationcode", "sessionid", "signature"}
	secretWords = map[string]bool{"key": true, "keys": true, "pwd": true, "pin": true, "otp": true,
		"totp": true, "hotp": true, "hash": true, "salt": true, "code": true, "session": true,
		"sig": true, "jwt": true, "pass": true}
	safeLastWords = map[string]bool{"id": true, "ids": true, "type": true, "kind": true,
		"count": true, "expiry": true, "expires": true, "scope": true, "scopes": true,
		"version": true, "age": true}
	secretValuePrefixes = []string{"$argon2", "$2a$", "$2b$", "$2y$", "$scrypt$", "$pbkdf2",
		"$6$", "$5$", "-----begin"}
)

// checkSecretKey refuses keys naming a secret ("password", "refresh_token", "api_key", "otp",
// "session_id") but allows those naming a fact about a token or key ("token_id", "old_key_id",
// "token_type", "refresh_token_expiry").
func checkSecretKey(key string) error {
	words := strings.Split(key, "_")
	if n := len(words); n >= 2 && safeLastWords[words[n-1]] && (words[n-2] == "token" || words[n-2] == "key") {
		return nil
	}
	joined := strings.Join(words, "")
	for _, s := range secretSubstrings {
		if strings.Contains(joined, s) {
			return &RedactionError{Key: key, Reason: "key names a secret"}
		}
	}
	for _, w := range words {
		if secretWords[w] {
			return &RedactionError{Key: key, Reason: "key names a secret"}
		}
	}
	return nil
}

// checkSecretValue refuses values that look like a password hash, a PEM key, an HTTP
// Authorization header value or a JWT, whatever their key.
func checkSecretValue(key, v string) error {
	lv := strings.ToLower(strings.TrimSpace(v))
	for _, p := range secretValuePrefixes {
		if strings.HasPrefix(lv, p) {
			return &RedactionError{Key: key, Reason: "value looks like a password hash or a key"}
		}
	}
	for _, scheme := range []string{"bearer ", "basic "} {
		if rest, ok := strings.CutPrefix(lv, scheme); ok && len(rest) >= 8 && !strings.ContainsAny(rest, " \t") {
			return &RedactionError{Key: key, Reason: "value looks like an Authorization header"}
		}
	}
	if strings.HasPrefix(strings.TrimSpace(v), "eyJ") && strings.Count(v, ".") == 2 {
		return &RedactionError{Key: key, Reason: "value looks like a JWT"}
	}
	return nil
}

// prepare returns e with its text fields escaped and truncated, or an error if a field that
// the program (not a user) supplies is invalid: the action, the detail keys, a secret.
func prepare(e Entry) (Entry, error) {
	if !e.Action.Valid() {
		return e, invalid("unknown action %q", Sanitize(string(e.Action)))
	}
	if e.Actor == "" {
		return e, invalid("empty actor")
	}
	e.Actor = truncate(Sanitize(e.Actor), MaxActorLen)
	e.Target = truncate(Sanitize(e.Target), MaxTargetLen)
	if len(e.Detail) > MaxDetailKeys {
		return e, invalid("more than %d detail keys", MaxDetailKeys)
	}
	if len(e.Detail) > 0 {
		d := make(map[string]string, len(e.Detail))
		for k, v := range e.Detail {
			if !detailKeyRE.MatchString(k) {
				return e, invalid("detail key %q must match %s", Sanitize(k), detailKeyRE)
			}
			if err := checkSecretKey(k); err != nil {
				return e, err
			}
			if err := checkSecretValue(k, v); err != nil {
				return e, err
			}
			d[k] = truncate(Sanitize(v), MaxDetailLen)
		}
		e.Detail = d
	}
	return e, nil
}

func checkTenant(tenant string) error {
	if tenant == "" || len(tenant) > MaxTenantLen || !clean(tenant) || strings.ContainsAny(tenant, " \n") {
		return fmt.Errorf("audit: tenant id must be 1 to %d printable characters without spaces", MaxTenantLen)
	}
	return nil
}

// wireEntry is the canonical JSON form: fixed field order, every field present, detail keys
// sorted (encoding/json sorts map keys), time in UTC RFC 3339 with nanoseconds.
type wireEntry struct {
	V      int               `json:"v"`
	Seq    int64             `json:"seq"`
	Time   string            `json:"time"`
	Tenant string            `json:"tenant"`
	Actor  string            `json:"actor"`
	Action Action            `json:"action"`
	Target string            `json:"target"`
	Detail map[string]string `json:"detail"`
	Salt   string            `json:"salt"`
}

const formatVersion = 1

// encode returns the canonical JSON of a prepared entry.
func encode(e Entry) ([]byte, error) {
	if y := e.Time.UTC().Year(); y < 1 || y > 9999 {
		return nil, invalid("time out of range")
	}
	w := wireEntry{
		V: formatVersion, Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Tenant: e.Tenant,
		Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: e.Detail,
		Salt: base64.RawURLEncoding.EncodeToString(e.salt),
	}
	if w.Detail == nil {
		w.Detail = map[string]string{}
	}
	return json.Marshal(w)
}

// DecodeEntry parses a stored entry and checks that it is exactly what Append would have
// written: canonical JSON, known action, escaped text, no secrets, within limits. It never
// panics on hostile input.
func DecodeEntry(body []byte) (Entry, error) {
	var w wireEntry
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Entry{}, invalid("not an entry: %v", err)
	}
	if w.V != formatVersion {
		return Entry{}, invalid("unknown format version %d", w.V)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return Entry{}, invalid("bad time")
	}
	salt, err := base64.RawURLEncoding.Strict().DecodeString(w.Salt)
	if err != nil || len(salt) != saltSize {
		return Entry{}, invalid("bad salt")
	}
	e := Entry{Seq: w.Seq, Time: t.UTC(), Tenant: w.Tenant, Actor: w.Actor, Action: w.Action,
		Target: w.Target, Detail: w.Detail, salt: salt}
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
	if e.Seq < 0 {
		return Entry{}, invalid("negative seq")
	}
	if err := checkTenant(e.Tenant); err != nil {
		return Entry{}, invalid("%v", err)
	}
	p, err := prepare(e)
	if err != nil {
		return Entry{}, err
	}
	if p.Actor != e.Actor || p.Target != e.Target || !equalDetail(p.Detail, e.Detail) {
		return Entry{}, invalid("unescaped or over-long text")
	}
	again, err := encode(e)
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again, body) {
		return Entry{}, invalid("not in canonical form")
	}
	return e, nil
}

func equalDetail(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// String formats an entry as one line of text, safe to print: every field is escaped.
func (e Entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s tenant=%s actor=%s action=%s", e.Seq, e.Time.UTC().Format(time.RFC3339), Sanitize(e.Tenant),
		Sanitize(e.Actor), Sanitize(string(e.Action)))
	if e.Target != "" {
		fmt.Fprintf(&b, " target=%s", Sanitize(e.Target))
	}
	if len(e.Detail) > 0 {
		b.WriteString(" ")
		d, _ := json.Marshal(e.Detail)
		b.Write(d)
	}
	return b.String()
}
