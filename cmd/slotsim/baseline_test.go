package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slotd/slotd/internal/pgtest"
)

// TestBaselineComparison runs a short smoke against slotd and then the
// same booking workload against bench/baseline on a throwaway PostgreSQL
// cluster: both checks pass and the ratio is computed. Nothing is asserted
// about speed. Without PostgreSQL it skips, or fails under CI=true.
func TestBaselineComparison(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	cluster := pgtest.Start(t)
	slotd := mustSlotd(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "baseline")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/slotd/slotd/bench/baseline").CombinedOutput(); err != nil {
		t.Fatalf("go build bench/baseline: %v\n%s", err, out)
	}
	jsonPath := filepath.Join(dir, "out.json")
	reportPath := filepath.Join(dir, "out.html")
	args := []string{"smoke", "-spawn", slotd, "-mix", "book=100", "-duration", "2s", "-json", jsonPath, "-report", reportPath,
		"-progress", "off", "-baseline-spawn", bin, "-baseline-args", "-database-url " + cluster.OwnerDSN() + " -pool 8"}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("slotsim exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Check    checkReport     `json:"check"`
		Baseline *baselineResult `json:"baseline"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Check.Passed {
		t.Errorf("slotd check failed:\n%s", stdout.String())
	}
	br := res.Baseline
	if br == nil {
		t.Fatalf("no baseline in the JSON result:\n%s", stdout.String())
	}
	if !br.Check.Passed || br.Check.AckedChecked == 0 || br.BookingsAcked == 0 {
		t.Errorf("baseline: check passed %v, %d acked checked, %d acked:\n%s", br.Check.Passed, br.Check.AckedChecked, br.BookingsAcked, stdout.String())
	}
	if c := br.Compare; c.Ratio <= 0 || c.SlotdBookingsPerSec <= 0 || c.BaselineBookingsPerSec <= 0 || c.BaselineP99 <= 0 {
		t.Errorf("comparison not computed: %+v", c)
	}
	if !strings.Contains(stdout.String(), "ratio (slotd/baseline bookings/s)") {
		t.Errorf("no comparison table on stdout:\n%s", stdout.String())
	}
	if html, _ := os.ReadFile(reportPath); !bytes.Contains(html, []byte("ratio (slotd/baseline bookings/s)")) {
		t.Errorf("the HTML report lacks the comparison")
	}
}
