package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/slotd/slotd/engine"
)

// httpStatus maps an error code to its HTTP status. It is the one place
// that does: WebSocket error frames carry the code itself.
func httpStatus(c engine.Code) int {
	switch c {
	case engine.CodeInvalid, engine.CodeOffGrid, engine.CodeTooSoon, engine.CodeTooFar, engine.CodeOutsideHours,
		engine.CodeUnknownType, engine.CodeBadVersion:
		return http.StatusBadRequest
	case engine.CodeUnauthorized:
		return http.StatusUnauthorized
	case engine.CodeForbidden:
		return http.StatusForbidden
	case engine.CodeNotFound:
		return http.StatusNotFound
	case engine.CodeSlotTaken, engine.CodeHoldExpired, engine.CodeAlreadyDone, engine.CodeInUse,
		engine.CodeIdemReused, engine.CodeConflict:
		return http.StatusConflict
	case engine.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case engine.CodeRateLimited:
		return http.StatusTooManyRequests
	case engine.CodeOverloaded, engine.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// HTTPStatus is the HTTP status of an error code, for packages that add
// routes (Config.Routes) and answer errors in the gateway's JSON form.
func HTTPStatus(c engine.Code) int { return httpStatus(c) }

// asError turns any error into an *engine.Error. Errors that are not
// already one are internal: they are logged and their text is not shown.
func asError(log *slog.Logger, err error) *engine.Error {
	var ee *engine.Error
	if errors.As(err, &ee) {
		if ee.Code == engine.CodeInternal {
			log.Error("internal error", "err", err)
		}
		return ee
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return engine.Errorf(engine.CodeUnavailable, "the request timed out; it may still complete")
	}
	log.Error("internal error", "err", err)
	return engine.Errorf(engine.CodeInternal, "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorBody is the JSON of an HTTP error response.
type errorBody struct {
	Error *engine.Error `json:"error"`
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	ee := asError(s.log, err)
	writeJSON(w, httpStatus(ee.Code), errorBody{ee})
}
