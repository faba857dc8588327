package integrations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultGoogleRevokeURL is Google's OAuth 2 token revocation endpoint.
const DefaultGoogleRevokeURL = "https://oauth2.googleapis.com/revoke"

// Doer models http.Client.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// A Revocation is what became of a credential at its provider when it was disconnected.
type Revocation string

// The revocation outcomes. Outcomes are only ever added.
const (
	// Revoked: the provider confirmed the revocation.
	Revoked Revocation = "revoked"
	// AlreadyInvalid: the provider said the credential was already expired or revoked.
	AlreadyInvalid Revocation = "already_invalid"
	// NotSupported: the provider offers no way to revoke this credential (Microsoft refresh
	// tokens, app-specific passwords); only our copy is deleted.
	NotSupported Revocation = "not_supported"
	// RevokeFailed: revocation was tried and failed; our copy is deleted all the same.
	RevokeFailed Revocation = "failed"
	// Unreadable: the stored credential could not be opened (its key is not in the keyring),
	// so it could not be sent to the provider; our copy is deleted all the same.
	Unreadable Revocation = "unreadable"
)

// A Revoker revokes a connection's credential at its provider. Errors must not contain the
// credential.
type Revoker interface {
	Revoke(ctx context.Context, c Connection, cred Credential) (Revocation, error)
}

// NoRevocation is the Revoker of providers that offer none: it reports NotSupported.
type NoRevocation struct{}

// Revoke implements Revoker.
func (NoRevocation) Revoke(context.Context, Connection, Credential) (Revocation, error) {
	return NotSupported, nil
}

// GoogleRevoker revokes Google refresh tokens at Google's revocation endpoint: a POST with
// the form-encoded body token=<refresh token>; 200 means revoked, 400 with the error
// "invalid_token" means already expired or revoked. Network errors, 429 and 5xx are retried.
type GoogleRevoker struct {
	URL      string // DefaultGoogleRevokeURL in production
	HTTP     Doer
	Attempts int           // 0 means 3
	Backoff  time.Duration // before the second attempt, doubling; 0 means 500 ms
}

// A ProviderError is a revocation the provider refused or could not be reached for. It holds
// the HTTP status and the provider's error code only, never the request.
type ProviderError struct {
	Provider Provider
	Status   int    // 0 when no response arrived
	Code     string // the provider's error code ("invalid_request"), if it sent one
	Err      error  // the transport error when no response arrived
}

func (e *ProviderError) Error() string {
	switch {
	case e.Status == 0:
		return fmt.Sprintf("%s revocation: %v", e.Provider, e.Err)
	case e.Code != "":
		return fmt.Sprintf("%s revocation: HTTP %d %s", e.Provider, e.Status, e.Code)
	}
	return fmt.Sprintf("%s revocation: HTTP %d", e.Provider, e.Status)
}

func (e *ProviderError) Unwrap() error { return e.Err }

// Revoke implements Revoker.
func (g *GoogleRevoker) Revoke(ctx context.Context, _ Connection, cred Credential) (Revocation, error) {
	if cred.RefreshToken == "" {
		return Unreadable, errors.New("google revocation: no refresh token")
	}
	attempts, pause := g.Attempts, g.Backoff
	if attempts <= 0 {
		attempts = 3
	}
	if pause <= 0 {
		pause = 500 * time.Millisecond
	}
	var last error
	for i := range attempts {
		if i > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return RevokeFailed, errors.Join(last, ctx.Err())
			case <-t.C:
			}
			pause *= 2
		}
		rev, retry, err := g.once(ctx, cred.RefreshToken)
		if err == nil {
			return rev, nil
		}
		last = err
		if !retry {
			break
		}
	}
	return RevokeFailed, last
}

func (g *GoogleRevoker) once(ctx context.Context, token string) (rev Revocation, retry bool, err error) {
	body := url.Values{"token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, strings.NewReader(body))
	if err != nil {
		return "", false, &ProviderError{Provider: Google, Err: errors.New("bad revocation URL")}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := g.HTTP.Do(req)
	if err != nil {
		// *url.Error names the URL, which holds no token (it is in the body).
		return "", ctx.Err() == nil, &ProviderError{Provider: Google, Err: err}
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	_ = json.Unmarshal(b, &e)
	code := errorCode(e.Error)
	switch {
	case resp.StatusCode == http.StatusOK:
		return Revoked, false, nil
	case resp.StatusCode == http.StatusBadRequest && code == "invalid_token":
		return AlreadyInvalid, false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return "", true, &ProviderError{Provider: Google, Status: resp.StatusCode, Code: code}
	}
	return "", false, &ProviderError{Provider: Google, Status: resp.StatusCode, Code: code}
}

// errorCode keeps an OAuth error code if it looks like one (RFC 6749 codes are lowercase
// ASCII and underscores), so that nothing else a server sends reaches our logs.
func errorCode(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return ""
		}
	}
	return s
}
