package postgres

import (
	"strings"
	"testing"
)

// TestRecordStatementsFilterByTenant: every records statement names the
// tenant itself, so scoping does not rest on row-level security (which
// CockroachDB lacks).
func TestRecordStatementsFilterByTenant(t *testing.T) {
	for name, sql := range map[string]string{
		"getRecordSQL": getRecordSQL, "replaceRecordSQL": replaceRecordSQL, "deleteRecordSQL": deleteRecordSQL,
		"deleteRecordVersionSQL": deleteRecordVersionSQL, "recordExistsSQL": recordExistsSQL,
		"listRecordsSQL": listRecordsSQL, "deleteTenantRecordsSQL": deleteTenantRecordsSQL,
		"deleteKindRecordsSQL": deleteKindRecordsSQL,
	} {
		if !strings.Contains(sql, "WHERE tenant_id = $1") {
			t.Errorf("%s does not filter by tenant_id = $1:\n%s", name, sql)
		}
	}
	for name, sql := range map[string]string{"createRecordSQL": createRecordSQL, "upsertRecordSQL": upsertRecordSQL} {
		if !strings.Contains(sql, "VALUES ($1,") || !strings.Contains(sql, "ON CONFLICT (tenant_id, kind, key)") {
			t.Errorf("%s does not insert tenant $1 with conflicts on the tenant's key:\n%s", name, sql)
		}
	}
}

func TestListRecordsQuery(t *testing.T) {
	tests := []struct {
		lower, upper string
		limit        int
		wantSQL      string
		wantArgs     int
	}{
		{"", "", 0, listRecordsSQL + " ORDER BY key", 3},
		{"a", "b", 0, listRecordsSQL + " AND key < $4 ORDER BY key", 4},
		{"a", "", 10, listRecordsSQL + " ORDER BY key LIMIT $4", 4},
		{"a", "b", 10, listRecordsSQL + " AND key < $4 ORDER BY key LIMIT $5", 5},
	}
	for _, tt := range tests {
		sql, args := listRecordsQuery("acme", "session", tt.lower, tt.upper, tt.limit)
		if sql != tt.wantSQL || len(args) != tt.wantArgs {
			t.Errorf("listRecordsQuery(%q, %q, %d) = %q with %d args, want %q with %d", tt.lower, tt.upper, tt.limit, sql, len(args), tt.wantSQL, tt.wantArgs)
		}
		if lower, ok := args[2].([]byte); !ok || lower == nil || string(lower) != tt.lower {
			t.Errorf("listRecordsQuery(%q, ...) lower bound argument = %#v, want a non-nil []byte (nil is NULL)", tt.lower, args[2])
		}
	}
}
