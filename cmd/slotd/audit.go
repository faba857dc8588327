package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slotd/slotd/persistence"
	"github.com/slotd/slotd/security/audit"
	"github.com/slotd/slotd/security/auditstore"
)

// Environment variables of the audit trail's checkpoint keys (`slotd audit keygen` makes a
// pair). The signer key signs each tenant's log head; it belongs with the master keys, outside
// the database. The verifier key only checks signatures and may be published.
const (
	envAuditSigner     = "SLOTD_AUDIT_SIGNER_KEY"
	envAuditSignerFile = "SLOTD_AUDIT_SIGNER_KEY_FILE"
	envAuditVerifier   = "SLOTD_AUDIT_VERIFIER_KEY"
	envAuditRetention  = "SLOTD_AUDIT_RETENTION"
)

// runAudit is "slotd audit": the tamper-evident security log.
//
//	slotd audit keygen [-name NAME]   print a new checkpoint signer and verifier key
//	slotd audit verify [flags]        verify every tenant's log (and prune it, with -prune)
func runAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprint(stderr, `Usage:
  slotd audit keygen [-name NAME]   print a new checkpoint signing key pair
  slotd audit verify [flags]        verify each tenant's audit log; non-zero exit on tampering

Run "slotd audit verify -h" for its flags.
`)
	}
	if len(args) == 0 {
		usage()
		return errors.New("audit: want a subcommand: verify or keygen")
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], getenv, stdout, stderr)
	case "keygen":
		return auditKeygen(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage()
		return nil
	}
	usage()
	return fmt.Errorf("audit: unknown subcommand %q", args[0])
}

func auditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slotd audit keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "slotd-audit", "key name, shown in signatures")
	if help, err := parseSubcommand(fs, args); help || err != nil {
		return err
	}
	skey, vkey, err := audit.GenerateKey(*name)
	if err != nil {
		return fmt.Errorf("audit keygen: %w", err)
	}
	fmt.Fprintf(stdout, "%s=%s\n%s=%s\n", envAuditSigner, skey, envAuditVerifier, vkey)
	fmt.Fprintf(stderr, "keep %s with the master keys, never in the database; %s may be published\n", envAuditSigner, envAuditVerifier)
	return nil
}

// auditKeys returns the checkpoint signer (nil if none is configured) and verifier from the
// environment.
func auditKeys(getenv func(string) string, verifierKey string) (note.Signer, note.Verifier, error) {
	skey := strings.TrimSpace(getenv(envAuditSigner))
	if file := getenv(envAuditSignerFile); file != "" {
		if skey != "" {
			return nil, nil, fmt.Errorf("both %s and %s are set; set one", envAuditSigner, envAuditSignerFile)
		}
		fi, err := os.Stat(file)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", envAuditSignerFile, err)
		}
		if fi.Mode().Perm()&0o007 != 0 {
			return nil, nil, fmt.Errorf("%s %s has mode %v; it must not be accessible to others (chmod 0400)", envAuditSignerFile, file, fi.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", envAuditSignerFile, err)
		}
		skey = strings.TrimSpace(string(b))
	}
	var signer note.Signer
	if skey != "" {
		s, err := note.NewSigner(skey)
		if err != nil {
			// The error of note.NewSigner does not quote the key.
			return nil, nil, fmt.Errorf("audit signer key: %w", err)
		}
		signer = s
	}
	if verifierKey == "" {
		if signer != nil {
			return nil, nil, fmt.Errorf("%s is set but %s is not: set both (slotd audit keygen prints a pair)", envAuditSigner, envAuditVerifier)
		}
		return nil, nil, nil
	}
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, nil, fmt.Errorf("audit verifier key: %w", err)
	}
	return signer, v, nil
}

// auditFromEnv returns the audit log over the record store with the keys from the
// environment; with optional set, nil (and no error) when no keys are configured.
func auditFromEnv(getenv func(string) string, records persistence.RecordStore, dir persistence.Store, retention time.Duration, optional bool) (*audit.Log, error) {
	signer, verifier, err := auditKeys(getenv, strings.TrimSpace(getenv(envAuditVerifier)))
	if err != nil {
		return nil, err
	}
	if verifier == nil || (optional && signer == nil) {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("set %s (the public key `slotd audit keygen` printed)", envAuditVerifier)
	}
	return audit.New(auditstore.New(records, tenantLister(dir)), audit.Options{Signer: signer, Verifier: verifier, Retention: retention})
}

// parseRetention reads a retention period: a Go duration ("4320h") or whole days ("180d").
func parseRetention(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("retention %q: want a positive number of days, like 180d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("retention %q: want a positive duration, like 180d or 4320h", s)
	}
	return d, nil
}

const checkpointExt = ".checkpoint"

func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slotd audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := toolFlags(fs, getenv)
	tenant := fs.String("tenant", "", "verify this tenant only; default: every tenant with an audit log")
	checkpoints := fs.String("checkpoints", "", "directory of trusted checkpoints, one <tenant>.checkpoint each, kept outside the database: each log must extend its tenant's (catching a rollback of the whole log); a verified log's new checkpoint replaces it")
	prune := fs.Bool("prune", false, "after a tenant's log verifies, delete the bodies of entries older than -retention (needs "+envAuditSigner+")")
	retentionText := fs.String("retention", cmp.Or(getenv(envAuditRetention), "180d"), "with -prune: how long entries are kept, in days (180d) or as a duration (env "+envAuditRetention+")")
	verifierKey := fs.String("verifier-key", getenv(envAuditVerifier), "checkpoint verifier key (env "+envAuditVerifier+")")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: slotd audit verify [flags]

Recomputes each tenant's audit log from the database and checks it against its signed
checkpoint: any altered, removed, reordered, inserted or truncated entry makes the command
name the tenant, the entry index and the problem, and exit non-zero.

Flags:
`)
		fs.PrintDefaults()
	}
	if help, err := parseSubcommand(fs, args); help || err != nil {
		return err
	}
	retention, err := parseRetention(*retentionText)
	if err != nil {
		return err
	}
	if *tenant != "" && !persistence.ValidTenant(*tenant) {
		return fmt.Errorf("audit verify: %q is not a tenant id", *tenant)
	}
	signer, verifier, err := auditKeys(getenv, strings.TrimSpace(*verifierKey))
	if err != nil {
		return err
	}
	if verifier == nil {
		return fmt.Errorf("audit verify: set %s or -verifier-key (the public key `slotd audit keygen` printed)", envAuditVerifier)
	}
	if *prune && signer == nil {
		return fmt.Errorf("audit verify: -prune needs %s: pruning records that it happened in the log", envAuditSigner)
	}
	if *checkpoints != "" {
		if err := os.MkdirAll(*checkpoints, 0o700); err != nil {
			return fmt.Errorf("checkpoints: %w", err)
		}
	}
	store, records, _, err := openToolStore(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer store.Close()
	st := auditstore.New(records, tenantLister(store))
	log, err := audit.New(st, audit.Options{Signer: signer, Verifier: verifier, Retention: retention})
	if err != nil {
		return err
	}

	tenants := []string{*tenant}
	if *tenant == "" {
		if tenants, err = st.Tenants(ctx); err != nil {
			return err
		}
		// A tenant with a trusted checkpoint is verified even if its log is gone from the
		// database entirely: that is a truncation too.
		if *checkpoints != "" {
			files, err := filepath.Glob(filepath.Join(*checkpoints, "*"+checkpointExt))
			if err != nil {
				return err
			}
			for _, f := range files {
				t := strings.TrimSuffix(filepath.Base(f), checkpointExt)
				if persistence.ValidTenant(t) && !slices.Contains(tenants, t) {
					tenants = append(tenants, t)
				}
			}
			slices.Sort(tenants)
		}
	}

	var failed []string
	var entries, pruned int64
	for _, t := range tenants {
		rep, err := verifyTenant(ctx, log, t, *checkpoints)
		if err != nil {
			var ve *audit.VerifyError
			if errors.As(err, &ve) {
				what := string(ve.Problem)
				if ve.Index >= 0 {
					what = fmt.Sprintf("entry %d %s", ve.Index, ve.Problem)
				}
				failed = append(failed, fmt.Sprintf("%s (%s)", t, what))
				fmt.Fprintf(stdout, "tenant %s: TAMPERED: %v\n", t, err)
			} else {
				failed = append(failed, fmt.Sprintf("%s (error)", t))
				fmt.Fprintf(stdout, "tenant %s: could not verify: %v\n", t, err)
			}
			continue
		}
		entries += rep.Checkpoint.Size
		line := fmt.Sprintf("tenant %s: ok, %d entries", t, rep.Checkpoint.Size)
		if rep.Pruned > 0 {
			line += fmt.Sprintf(" (bodies below %d pruned by retention)", rep.Pruned)
		}
		if *prune {
			n, err := log.Prune(ctx, t)
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s (prune)", t))
				fmt.Fprintf(stdout, "%s; prune failed: %v\n", line, err)
				continue
			}
			pruned += n
			if n > 0 {
				line += fmt.Sprintf(", pruned %d older than %s", n, *retentionText)
				// The prune appended an entry: keep the checkpoint that includes it.
				if rep, err = verifyTenant(ctx, log, t, *checkpoints); err != nil {
					failed = append(failed, fmt.Sprintf("%s (after prune)", t))
					fmt.Fprintf(stdout, "%s; verify after prune: %v\n", line, err)
					continue
				}
			}
		}
		fmt.Fprintln(stdout, line)
	}
	summary := fmt.Sprintf("%d tenants, %d entries verified", len(tenants), entries)
	if *prune {
		summary += fmt.Sprintf(", %d pruned", pruned)
	}
	if len(failed) > 0 {
		fmt.Fprintf(stdout, "%s; %d FAILED\n", summary, len(failed))
		return fmt.Errorf("audit verify: %d of %d tenants failed: %s", len(failed), len(tenants), strings.Join(failed, ", "))
	}
	fmt.Fprintln(stdout, summary+"; all intact")
	return nil
}

// verifyTenant verifies one tenant's log against its trusted checkpoint in dir (if any) and
// saves the new checkpoint there. A log that grew during the check (an instance appending)
// can look like it holds unsigned entries: that one problem is checked again.
func verifyTenant(ctx context.Context, log *audit.Log, tenant, dir string) (audit.Report, error) {
	var trusted []byte
	path := ""
	if dir != "" {
		path = filepath.Join(dir, tenant+checkpointExt)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			trusted = b
		case !errors.Is(err, os.ErrNotExist):
			return audit.Report{}, fmt.Errorf("trusted checkpoint: %w", err)
		}
	}
	var (
		rep audit.Report
		err error
	)
	for range 3 {
		rep, err = log.Verify(ctx, tenant, trusted)
		var ve *audit.VerifyError
		if !errors.As(err, &ve) || ve.Problem != audit.ProblemUnsigned {
			break
		}
	}
	if err != nil || path == "" || rep.Checkpoint.Note == nil {
		return rep, err
	}
	tmp, err := os.CreateTemp(dir, "."+tenant+"-*")
	if err != nil {
		return rep, fmt.Errorf("save checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(rep.Checkpoint.Note); err != nil {
		tmp.Close()
		return rep, fmt.Errorf("save checkpoint: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return rep, fmt.Errorf("save checkpoint: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return rep, fmt.Errorf("save checkpoint: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return rep, fmt.Errorf("save checkpoint: %w", err)
	}
	return rep, nil
}
