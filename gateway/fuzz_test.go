package gateway_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/slotd/slotd/engine"
	"github.com/slotd/slotd/gateway"
)

// FuzzDecodeRequest feeds arbitrary frames to the WebSocket decoder. It
// must never panic; a refusal is a well-formed *engine.Error that never
// echoes an over-long id; an accepted request has the protocol version, a
// type and a bounded id, and re-encoding it decodes to the same request.
// Seeds (real protocol frames) are in testdata/fuzz/FuzzDecodeRequest:
//
//	go test -run '^$' -fuzz FuzzDecodeRequest -fuzztime 30s ./gateway/
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"a","type":"ping"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := gateway.DecodeRequest(data)
		if len(req.ID) > gateway.MaxIDLen {
			t.Fatalf("DecodeRequest(%q) returned an id of %d bytes (max %d): it is echoed in the reply", data, len(req.ID), gateway.MaxIDLen)
		}
		if err != nil {
			if err.Message == "" || !knownCode(err.Code) {
				t.Fatalf("DecodeRequest(%q) = error %+v, want a known code and a message", data, err)
			}
			if _, merr := json.Marshal(err); merr != nil {
				t.Fatalf("DecodeRequest(%q): error %+v does not encode: %v", data, err, merr)
			}
			return
		}
		if req.V != gateway.ProtocolVersion || req.Type == "" {
			t.Fatalf("DecodeRequest(%q) accepted %+v without version %d or type", data, req, gateway.ProtocolVersion)
		}
		enc, merr := json.Marshal(req)
		if merr != nil {
			t.Fatalf("DecodeRequest(%q) = %+v, which does not encode: %v", data, req, merr)
		}
		again, err := gateway.DecodeRequest(enc)
		if err != nil {
			t.Fatalf("DecodeRequest(%q) = %+v; its encoding %s is refused: %v", data, req, enc, err)
		}
		if !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", data, again, req)
		}
	})
}

func knownCode(c engine.Code) bool {
	for _, k := range engine.AllCodes() {
		if c == k {
			return true
		}
	}
	return false
}
