package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/slotd/slotd/accounts"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/slotd/slotd/gateway"
	"github.com/slotd/slotd/integrations"
	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/privacy"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/secrets"
)

// runKeys is "slotd keys": master key management.
//
//	slotd keys generate [-kid ID]   print a new keyring entry "kid:base64"
//	slotd keys rotate [store flags] re-seal every secret under the active key
//
// Rotating the master key without downtime:
//
//  1. `slotd keys generate` and put the new entry first in SLOTD_MASTER_KEYS (or the key
//     file), keeping the old one after it; restart the instances one by one. Each now seals
//     under the new key and still opens what the old one sealed.
//  2. `slotd keys rotate`, with the same keyring, while slotd serves: it re-seals every
//     calendar credential and re-wraps every data subject's key under the new key, each by
//     compare-and-swap, so a secret written meanwhile is re-read, never overwritten. It checks
//     again at the end and repeats if a writer still used an old key.
//  3. Remove the old key from the keyring and restart the instances again.
//
// With the embedded store (Pebble), one process holds the data directory: stop slotd for step
// 2 (it takes seconds); with PostgreSQL it runs beside the serving instances.
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprint(stderr, `Usage:
  slotd keys generate [-kid ID]   print a new master key entry (kid:base64) for SLOTD_MASTER_KEYS
  slotd keys rotate [flags]       re-seal every stored secret under the active (first) master key

Run "slotd keys rotate -h" for its flags.
`)
	}
	if len(args) == 0 {
		usage()
		return errors.New("keys: want a subcommand: generate or rotate")
	}
	switch args[0] {
	case "generate":
		return keysGenerate(args[1:], stdout, stderr)
	case "rotate":
		return keysRotate(ctx, args[1:], getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage()
		return nil
	}
	usage()
	return fmt.Errorf("keys: unknown subcommand %q", args[0])
}

func keysGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slotd keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kid := fs.String("kid", time.Now().UTC().Format("k20060102-150405"), "key id: 1–64 letters, digits, '.', '_' or '-'; unique in the keyring")
	if help, err := parseSubcommand(fs, args); help || err != nil {
		return err
	}
	line, err := secrets.GenerateKey(*kid)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, line)
	fmt.Fprintln(stderr, "put this entry first in SLOTD_MASTER_KEYS (or the key file), keep the old key after it, restart, then run `slotd keys rotate`")
	return nil
}

// toolFlags registers the flags that select the store on a subcommand's flag set; the
// defaults and environment variables are slotd's own.
func toolFlags(fs *flag.FlagSet, getenv func(string) string) *options {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	o := &options{logLevel: "warn", logFormat: "text"}
	fs.StringVar(&o.dataDir, "data", env("SLOTD_DATA_DIR", "./data"), "data directory of the embedded store (env SLOTD_DATA_DIR)")
	fs.StringVar(&o.databaseURL, "database-url", env("SLOTD_DATABASE_URL", ""), "PostgreSQL URL, as slotd's application role; empty: the embedded store in -data (env SLOTD_DATABASE_URL)")
	fs.StringVar(&o.regions, "regions", env("SLOTD_REGIONS", ""), "one PostgreSQL database per region, name=URL,… (env SLOTD_REGIONS)")
	fs.StringVar(&o.defaultRegion, "default-region", env("SLOTD_DEFAULT_REGION", ""), "with -regions: the region holding the directory (env SLOTD_DEFAULT_REGION)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error")
	return o
}

// openToolStore opens the store a subcommand's flags select, as a record store, and returns
// its tenants lister.
func openToolStore(ctx context.Context, o *options, stderr io.Writer) (persistence.Store, persistence.RecordStore, *slog.Logger, error) {
	if err := checkStoreFlags(*o); err != nil {
		return nil, nil, nil, err
	}
	log, err := newLogger(*o, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	store, _, err := openStore(ctx, *o, log)
	if err != nil {
		if o.databaseURL == "" && o.regions == "" {
			err = fmt.Errorf("%w\n(the embedded store is held by one process at a time: is slotd running on %s? stop it first, or use PostgreSQL to run this beside it)", err, o.dataDir)
		}
		return nil, nil, nil, err
	}
	records, ok := store.(persistence.RecordStore)
	if !ok {
		store.Close()
		return nil, nil, nil, errors.New("the store keeps no tenant records")
	}
	return store, records, log, nil
}

func tenantLister(dir persistence.Store) func(ctx context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) { return dir.ListDirectory(ctx, gateway.KindTenant) }
}

func keysRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slotd keys rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := toolFlags(fs, getenv)
	tenant := fs.String("tenant", "", "rotate this tenant only; default: every tenant")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: slotd keys rotate [flags]

Re-seals every calendar credential and re-wraps every data subject's key under the
active (first) key of SLOTD_MASTER_KEYS / SLOTD_MASTER_KEYS_FILE, keeping the others
readable meanwhile. Safe to run while slotd serves (PostgreSQL) and to run again.
With SLOTD_AUDIT_SIGNER_KEY set, each tenant's rotation is written to its audit trail.

Flags:
`)
		fs.PrintDefaults()
	}
	if help, err := parseSubcommand(fs, args); help || err != nil {
		return err
	}
	store, records, log, err := openToolStore(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	ring, err := loadKeyring(*o, getenv, log)
	if err != nil {
		return err
	}
	auditLog, err := auditFromEnv(getenv, records, store, 0, true)
	if err != nil {
		return err
	}
	tenants := []string{*tenant}
	if *tenant == "" {
		if tenants, err = store.ListDirectory(ctx, gateway.KindTenant); err != nil {
			return fmt.Errorf("list tenants: %w", err)
		}
	}
	rotators, err := keyRotators(ring, records, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rotating to key %s (keyring: %s), %d tenants\n", ring.ActiveKID(), strings.Join(ring.KIDs(), ", "), len(tenants))
	return rotateAll(ctx, tenants, rotators, ring.ActiveKID(), auditLog, stdout)
}

// A keyRotator re-seals one kind of secret of one tenant under the active master key.
// Everything sealed with the master keyring must have one here, or removing an old key
// makes it unreadable.
type keyRotator struct {
	name   string // plural, for the report: "calendar credentials"
	rotate func(ctx context.Context, tenant string) (keyRotation, error)
}

type keyRotation struct {
	done    int // moved to the active key
	current int // already under it
	retried int // concurrent writes re-read and redone
}

// keyRotators lists the secrets sealed with the master keyring.
func keyRotators(ring *secrets.Keyring, records persistence.RecordStore, log *slog.Logger) ([]keyRotator, error) {
	integ, err := integrations.New(integrations.Config{Records: records, Keys: ring, Logger: log})
	if err != nil {
		return nil, err
	}
	codec := privacy.NewCodec(ring, records)
	accs, err := accounts.New(accounts.Config{Records: records, Passwords: noHasher{}, Secrets: ring, Logger: log})
	if err != nil {
		return nil, err
	}
	return []keyRotator{
		{"second-factor secrets", func(ctx context.Context, tenant string) (keyRotation, error) {
			n, err := accs.RotateKeys(ctx, tenant)
			return keyRotation{done: n}, err
		}},
		{"calendar credentials", func(ctx context.Context, tenant string) (keyRotation, error) {
			r, err := integ.RotateKeys(ctx, tenant)
			return keyRotation{done: r.Resealed, current: r.Current, retried: r.Retried}, err
		}},
		{"data subject secrets", func(ctx context.Context, tenant string) (keyRotation, error) {
			current, err := subjectKeysUnder(ctx, ring, records, tenant)
			if err != nil {
				return keyRotation{}, err
			}
			n, err := codec.RotateKeys(ctx, tenant) // the subject keys, and the tenant's index salt
			return keyRotation{done: n, current: current}, err
		}},
	}, nil
}

// rotateAll runs every rotator over every tenant, then again until a pass finds nothing
// left under another key (a writer still on the old keyring could have sealed something
// meanwhile), at most three passes.
func rotateAll(ctx context.Context, tenants []string, rotators []keyRotator, kid string, auditLog *audit.Log, stdout io.Writer) error {
	totals := make([]keyRotation, len(rotators))
	var failed []string
	const passes = 3
	for pass := 1; pass <= passes; pass++ {
		moved := 0
		failed = failed[:0]
		for i, tenant := range tenants {
			var parts []string
			var tenantErr error
			tenantMoved := 0
			for j, r := range rotators {
				got, err := r.rotate(ctx, tenant)
				if pass == 1 {
					totals[j].current += got.current
				}
				totals[j].done += got.done
				totals[j].retried += got.retried
				tenantMoved += got.done
				if got.done > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", got.done, r.name))
				}
				if err != nil {
					tenantErr = errors.Join(tenantErr, fmt.Errorf("%s: %w", r.name, err))
				}
			}
			moved += tenantMoved
			if tenantErr != nil {
				failed = append(failed, tenant)
				fmt.Fprintf(stdout, "tenant %s: FAILED: %v\n", tenant, tenantErr)
			} else if len(parts) > 0 {
				fmt.Fprintf(stdout, "tenant %s: moved %s to %s\n", tenant, strings.Join(parts, ", "), kid)
			}
			if tenantMoved > 0 && auditLog != nil {
				_, _, err := auditLog.Append(ctx, tenant, audit.Entry{Actor: "system:keys-rotate", Action: audit.ActionKeyRotation,
					Detail: map[string]string{"new_key_id": kid, "resealed": fmt.Sprint(tenantMoved)}})
				if err != nil {
					fmt.Fprintf(stdout, "tenant %s: audit trail: %v\n", tenant, err)
				}
			}
			if (i+1)%1000 == 0 {
				fmt.Fprintf(stdout, "… %d of %d tenants\n", i+1, len(tenants))
			}
		}
		if pass == 1 {
			for j, r := range rotators {
				fmt.Fprintf(stdout, "%s: %d moved to %s, %d already under it, %d concurrent writes retried\n",
					r.name, totals[j].done, kid, totals[j].current, totals[j].retried)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("keys rotate: %d of %d tenants failed (%s); fix and run again: it picks up where it stopped",
				len(failed), len(tenants), strings.Join(failed, ", "))
		}
		if pass > 1 && moved == 0 {
			names := make([]string, len(rotators))
			for j, r := range rotators {
				names[j] = r.name
			}
			fmt.Fprintf(stdout, "checked again: all %s are under %s. Once every slotd instance runs with this keyring, the old keys can be removed from it.\n", strings.Join(names, " and "), kid)
			return nil
		}
		if pass > 1 {
			fmt.Fprintf(stdout, "pass %d: %d more secrets were under another key (written meanwhile by an instance with the old keyring?)\n", pass, moved)
		}
	}
	return errors.New("keys rotate: secrets keep appearing under another key: make sure every slotd instance runs with the new key first in its keyring, then run again")
}

// subjectKeysUnder counts the tenant's data subject keys already wrapped under the active key.
func subjectKeysUnder(ctx context.Context, ring *secrets.Keyring, records persistence.RecordStore, tenant string) (int, error) {
	n := 0
	after := ""
	for {
		recs, err := records.ListRecords(ctx, tenant, privacy.KindSubjectKey, "", after, 500)
		if err != nil {
			return n, fmt.Errorf("list subject keys: %w", err)
		}
		for _, r := range recs {
			if stale, err := ring.NeedsRotation(r.Value); err == nil && !stale {
				n++
			}
		}
		if len(recs) < 500 {
			return n, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// noHasher stands in for the password hasher where accounts are only
// walked for key rotation: no password is hashed or checked there.
type noHasher struct{}

func (noHasher) Hash(string) (string, error) {
	return "", errors.New("no password hashing during key rotation")
}
func (noHasher) Verify(string, string) (bool, bool, error) {
	return false, false, errors.New("no password hashing during key rotation")
}
func (noHasher) VerifyDummy(string) {}
