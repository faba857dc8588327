package audit_test

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/security/audit"
)

func ExampleLog_Verify() {
	ctx := context.Background()
	skey, vkey, _ := audit.GenerateKey("slotd-audit")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	log, _ := audit.New(audit.NewMemoryStore(), audit.Options{Signer: signer, Verifier: verifier, Now: func() time.Time { return now }})

	_, _, _ = log.Append(ctx, "tenant-42", audit.Entry{Actor: "account:7", Action: audit.ActionSignIn, Detail: map[string]string{"ip": "192.0.2.1"}})
	_, trusted, _ := log.Append(ctx, "tenant-42", audit.Entry{Actor: "account:7", Action: audit.ActionRoleChanged, Target: "account:9",
		Detail: map[string]string{"old_role": "staff", "new_role": "admin"}})
	_, _, err := log.Append(ctx, "tenant-42", audit.Entry{Actor: "account:7", Action: audit.ActionExport, Detail: map[string]string{"password": "hunter2"}})
	fmt.Println(err)

	// Later, `slotd audit verify` with the checkpoint kept from before.
	rep, err := log.Verify(ctx, "tenant-42", trusted.Note)
	fmt.Println(rep.Checkpoint.Size, err)
	es, _ := log.Entries(ctx, "tenant-42", 0, 2)
	fmt.Println(es[1])
	// Output:
	// audit: detail "password" looks like a secret (key names a secret); log an id or a fact about it instead
	// 2 <nil>
	// #1 2025-03-01T09:00:00Z tenant=tenant-42 actor=account:7 action=role_changed target=account:9 {"new_role":"admin","old_role":"staff"}
}
