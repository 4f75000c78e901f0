#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzingclient against wschat's /echo endpoint and judges the result.
#
#   scripts/autobahn.sh [--full | --quick] [--update]
#
#   --full    every case (the default)
#   --quick   leave out the slowest groups: 9.* (large messages and fragment storms, performance
#             rather than conformance) and 12.*/13.* (permessage-deflate: 216 cases of 1,000
#             compressed messages each, most of the full run's time)
#   --update  rewrite autobahn/expected.json from this run (a quick run updates only its cases)
#
# Environment:
#   WSCHAT_BIN        server binary to test; when set, nothing is built. It is started as
#                     `$WSCHAT_BIN --addr 127.0.0.1:PORT --echo` and must serve RFC 6455 on /echo.
#   CARGO_TARGET_DIR  honoured for the default binary, ${CARGO_TARGET_DIR:-target}/release/wschat
#   AUTOBAHN_PYTHON2  a CPython 2.7 interpreter, if not the pyenv one
#   AUTOBAHN_TIMEOUT  seconds before wstest is stopped (default 2400: the full run took about 16
#                     minutes on a busy 2-core machine, 12.* and 13.* most of it)
#
# Exit status is non-zero when the report is missing or empty, when any case FAILED (or closed
# with a wrong code, uncleanly, or by the wrong endpoint), when any case is UNIMPLEMENTED, or
# when any case's behaviour, closing behaviour or the close code the server sent differs from
# autobahn/expected.json. wstest's own exit status is not trusted: it is 0
# even when the server was down for the whole run.
#
# The suite is Python 2.7 code (on Python 3 it installs but fails at import), so it lives in its
# own virtualenv under .autobahn/venv, created once and reused. virtualenv 20.22 dropped the
# ability to create 2.7 environments, hence the pin.
set -euo pipefail

SUITE_VERSION=25.10.1
QUICK_EXCLUDE=("9.*" "12.*" "13.*")

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=.autobahn
venv=$work/venv
reports=$work/reports

mode=full
update=()
for arg in "$@"; do
    case $arg in
    --full) mode=full ;;
    --quick) mode=quick ;;
    --update) update=(--update) ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "autobahn: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

say() { echo "autobahn: $*"; }
die() {
    echo "autobahn: $*" >&2
    exit 2
}

started=$SECONDS

# --- 1. The suite, in a Python 2.7 virtualenv --------------------------------------------------
find_python2() {
    local candidates=("${AUTOBAHN_PYTHON2:-}" /root/.pyenv/versions/2.7.18/bin/python2.7)
    if command -v pyenv >/dev/null 2>&1; then
        candidates+=("$(pyenv root)"/versions/2.7*/bin/python2.7)
    fi
    candidates+=(python2.7 python2)
    local py
    for py in "${candidates[@]}"; do
        [ -n "$py" ] || continue
        # A pyenv shim exists even when no 2.7 is installed: ask the interpreter itself.
        if "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

suite_installed() {
    [ -x "$venv/bin/wstest" ] &&
        [ "$("$venv/bin/python" -c 'import autobahntestsuite as a; print(a.__version__)' 2>/dev/null)" = "$SUITE_VERSION" ]
}

if suite_installed; then
    say "autobahntestsuite $SUITE_VERSION already in $venv"
else
    python2=$(find_python2) || die "no CPython 2.7 interpreter found (looked at \$AUTOBAHN_PYTHON2, \
/root/.pyenv/versions/2.7.18, pyenv's versions, python2.7 and python2 on PATH). The suite \
needs Python 2.7: install one with 'pyenv install 2.7.18', or point AUTOBAHN_PYTHON2 at one."
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to create the Python 2.7 virtualenv"
    say "installing autobahntestsuite $SUITE_VERSION into $venv with $python2"
    rm -rf "$venv" "$work/bootstrap"
    mkdir -p "$work"
    # virtualenv goes into a throwaway Python 3 venv rather than the machine's site-packages.
    python3 -m venv "$work/bootstrap"
    "$work/bootstrap/bin/pip" install --quiet --disable-pip-version-check 'virtualenv<20.22'
    "$work/bootstrap/bin/virtualenv" --quiet -p "$python2" "$venv"
    # pip on 2.7 prints a deprecation banner on every call; it is noise here.
    PYTHONWARNINGS=ignore "$venv/bin/pip" install --quiet --no-python-version-warning \
        --disable-pip-version-check "autobahntestsuite==$SUITE_VERSION"
    suite_installed || die "autobahntestsuite $SUITE_VERSION did not install into $venv"
fi

# --- 2. The server -----------------------------------------------------------------------------
if [ -n "${WSCHAT_BIN:-}" ]; then
    bin=$WSCHAT_BIN
    say "testing $bin (WSCHAT_BIN set, not building)"
else
    bin=${CARGO_TARGET_DIR:-target}/release/wschat
    say "building $bin"
    cargo build --release --quiet --bin wschat
fi
[ -x "$bin" ] || die "no server binary at $bin"

# Ask the kernel for a free loopback port, then hand it to the server. Binding port 0 in the
# server and parsing its log would avoid the small window between the two, but would tie this
# script to the log's wording; the readiness check below catches the rare lost race.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work"
server_log=$work/server.log
"$bin" --addr "127.0.0.1:$port" --echo >"$server_log" 2>&1 &
server_pid=$!

stop_server() {
    if kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        # Give graceful shutdown a moment, then insist.
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
}
trap stop_server EXIT
trap 'exit 130' INT TERM

ready=
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "autobahn: the server did not listen on 127.0.0.1:$port within 10 s; its log:" >&2
    tail -n 20 "$server_log" >&2
    exit 1
fi
say "server pid $server_pid on 127.0.0.1:$port (log in $server_log)"

# --- 3. The suite run --------------------------------------------------------------------------
excludes=()
if [ "$mode" = quick ]; then
    for pattern in "${QUICK_EXCLUDE[@]}"; do excludes+=(--exclude "$pattern"); done
fi
spec=$work/fuzzingclient.json
python3 autobahn/harness.py spec autobahn/fuzzingclient.json "ws://127.0.0.1:$port/echo" "$spec" \
    "${excludes[@]}"
# A stale index.json from an earlier run must never be judged as this run's.
rm -rf "$reports"

say "running the $mode suite (wstest log in $work/wstest.log)"
suite_started=$SECONDS
status=0
timeout --kill-after=10 "${AUTOBAHN_TIMEOUT:-2400}" \
    "$venv/bin/wstest" -m fuzzingclient -s "$spec" >"$work/wstest.log" 2>&1 || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "autobahn: wstest did not finish within ${AUTOBAHN_TIMEOUT:-2400} s" >&2
fi
say "suite took $((SECONDS - suite_started)) s (wstest exit status $status)"
verdict=0
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "autobahn: FAIL: the server died during the run; the end of its log:" >&2
    tail -n 20 "$server_log" >&2
    verdict=1
fi
stop_server
trap - EXIT INT TERM

# --- 4. The verdict ----------------------------------------------------------------------------
python3 autobahn/harness.py judge "$reports" autobahn/expected.json "${excludes[@]}" "${update[@]}" ||
    verdict=$?
say "report: $reports/index.html; total $((SECONDS - started)) s"
exit "$verdict"
