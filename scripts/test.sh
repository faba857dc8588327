#!/usr/bin/env bash
# Install what the test suite needs (only what is missing), then run it:
# gofmt, go vet, staticcheck and `go test -race` over the whole module.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh --short    # pass -short to go test
#
# Installs, when absent: Debian's chromium and PostgreSQL server (apt-get,
# needs root or sudo), the npm packages of tests/browser (npm ci), and
# staticcheck (into .tools/bin, gitignored). CI runs this script through
# .ci/run with CI=true; under CI a test whose dependency is missing fails
# instead of skipping.
#
# The go test output comes last; nothing is printed after it on success.
# The exit code is non-zero if any step failed.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2 # works with Go 1.26
DEFAULT_CHROMIUM=/usr/bin/chromium
GO_TEST_TIMEOUT=20m

usage() {
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

short=()
while [ $# -gt 0 ]; do
	case "$1" in
	--short) short=(-short) ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "scripts/test.sh: unknown argument: $1 (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

script_start=$SECONDS
step_start=$SECONDS
step_name=""
timings=()
failed=()

# joined: the failed steps, comma-separated.
joined() {
	local IFS=, s
	s="${failed[*]}"
	echo "${s//,/, }"
}

# heading NAME: close the previous step (printing its time) and open a new one.
heading() {
	end_step
	step_name="$1"
	step_start=$SECONDS
	printf '\n==> %s\n' "$step_name"
}

end_step() {
	if [ -n "$step_name" ]; then
		local took=$((SECONDS - step_start))
		timings+=("$(printf '%-40s %4ds' "$step_name" "$took")")
		printf -- '--- %s: %ds\n' "$step_name" "$took"
		step_name=""
	fi
}

die() {
	printf '\nscripts/test.sh: FAILED: %s\n' "$*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

apt_updated=0
apt_install() {
	if [ "$apt_updated" -eq 0 ]; then
		echo "apt-get update"
		as_root apt-get update -q || die "apt-get update"
		apt_updated=1
	fi
	echo "apt-get install -y $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" ||
		die "apt-get install $*"
}

printf '==> slotd test suite (%s, CI=%s%s)\n' "$ROOT" "${CI-<unset>}" "${short:+, -short}"

# ---------------------------------------------------------------------------
heading "toolchain"
command -v go >/dev/null 2>&1 || die "go not found in PATH (install Go first; go.mod wants $(sed -n 's/^go //p' go.mod))"
go version
if ! command -v gcc >/dev/null 2>&1; then
	echo "gcc missing (go test -race needs cgo)"
	apt_install gcc libc6-dev
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "node/npm missing"
	apt_install nodejs npm
fi
echo "node $(node --version), npm $(npm --version)"

# ---------------------------------------------------------------------------
heading "chromium"
CHROMIUM="${SLOTD_CHROMIUM:-$DEFAULT_CHROMIUM}"
if [ -x "$CHROMIUM" ]; then
	echo "present: $CHROMIUM"
elif [ "$CHROMIUM" = "$DEFAULT_CHROMIUM" ]; then
	apt_install chromium
	[ -x "$CHROMIUM" ] || die "apt-get installed chromium but $CHROMIUM is missing"
else
	die "SLOTD_CHROMIUM=$CHROMIUM is not an executable file"
fi
# The Debian wrapper script may print a harmless shell warning on stderr.
"$CHROMIUM" --version 2>/dev/null || die "$CHROMIUM --version failed"
export SLOTD_CHROMIUM="$CHROMIUM"

# ---------------------------------------------------------------------------
# internal/pgtest starts throwaway clusters from these binaries (the newest
# /usr/lib/postgresql/*/bin); contrib brings btree_gist for the bookings
# exclusion constraint.
heading "postgresql"
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null &&
	compgen -G "/usr/share/postgresql/*/extension/btree_gist.control" >/dev/null; then
	echo "present: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
else
	apt_install postgresql postgresql-contrib
	compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null ||
		die "apt-get installed postgresql but /usr/lib/postgresql/*/bin/initdb is missing"
fi

# ---------------------------------------------------------------------------
heading "browser test packages (tests/browser)"
BROWSER_DIR="$ROOT/tests/browser"
if [ ! -d "$BROWSER_DIR/node_modules" ] ||
	[ ! -f "$BROWSER_DIR/node_modules/.package-lock.json" ] ||
	[ "$BROWSER_DIR/package-lock.json" -nt "$BROWSER_DIR/node_modules/.package-lock.json" ]; then
	echo "npm ci (tests/browser)"
	(cd "$BROWSER_DIR" && npm ci --no-audit --no-fund) || die "npm ci in tests/browser"
else
	echo "present: tests/browser/node_modules"
fi
export SLOTD_BROWSER_TESTS_DIR="$BROWSER_DIR"

# ---------------------------------------------------------------------------
heading "go modules"
go mod download || die "go mod download"
echo "done"

# ---------------------------------------------------------------------------
heading "staticcheck $STATICCHECK_VERSION"
TOOLS_BIN="$ROOT/.tools/bin"
STATICCHECK="$TOOLS_BIN/staticcheck"
if [ -x "$STATICCHECK" ] && "$STATICCHECK" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
	echo "present: $("$STATICCHECK" -version)"
else
	mkdir -p "$TOOLS_BIN"
	GOBIN="$TOOLS_BIN" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ||
		die "go install staticcheck@$STATICCHECK_VERSION"
	"$STATICCHECK" -version
fi

# ---------------------------------------------------------------------------
# Static checks: a failure is recorded and go test still runs, so one CI run
# reports everything; the script exits non-zero at the end.
heading "gofmt -l"
unformatted="$(find . \( -name .git -o -name .tools -o -name node_modules -o -name testdata \) -prune -o \
	-name '*.go' -type f -print0 | xargs -0 -r gofmt -l)" || {
	echo "gofmt itself failed (syntax error?)"
	failed+=("gofmt")
	unformatted=""
}
if [ -n "$unformatted" ]; then
	echo "these files need gofmt -w:"
	printf '%s\n' "$unformatted" | sed 's/^/  /'
	failed+=("gofmt")
else
	echo "ok"
fi

heading "go vet ./..."
if go vet ./...; then echo "ok"; else failed+=("go vet"); fi

heading "staticcheck ./..."
if "$STATICCHECK" ./...; then echo "ok"; else failed+=("staticcheck"); fi

end_step
printf '\n==> timings so far\n'
printf '  %s\n' "${timings[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	printf '\n==> static checks FAILED: %s (running go test anyway)\n' "$(joined)"
fi

# ---------------------------------------------------------------------------
printf '\n==> go test -race -count=1 -timeout %s %s./...  (started %s; %ds elapsed)\n' \
	"$GO_TEST_TIMEOUT" "${short:+-short }" "$(date +%T)" "$((SECONDS - script_start))"
test_rc=0
go test -race -count=1 -timeout "$GO_TEST_TIMEOUT" ${short[@]+"${short[@]}"} ./... || test_rc=$?

if [ "$test_rc" -ne 0 ]; then
	failed+=("go test (exit $test_rc)")
fi
if [ ${#failed[@]} -gt 0 ]; then
	printf '\nscripts/test.sh: FAILED: %s (total %ds)\n' "$(joined)" "$((SECONDS - script_start))" >&2
	exit 1
fi
