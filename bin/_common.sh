# shellcheck shell=bash
# Shared by bin/test and bin/demo: find Python 3.12+, make .venv, install
# requirements once per change, install Debian packages when missing.
# Source it after `cd` to the repo root; it defines functions and sets nothing else.

DJTASKS_VENV="${DJTASKS_VENV:-.venv}"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf '\nERROR: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, through passwordless sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 126
    fi
}

# apt-get install PACKAGES, without starting their system services: the project
# runs its own redis-server and PostgreSQL cluster on free loopback ports, and a
# service left running on 6379/5432 by the install would only get in the way.
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install these packages yourself, then re-run: $*"
    as_root true \
        || die "installing $* needs root (or passwordless sudo): run 'apt-get install -y $*' as root, then re-run"
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        # Exit status 101 tells invoke-rc.d / deb-systemd-invoke "action forbidden".
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" && made_policy=1
    fi
    log "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if [ "$rc" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$@" || rc=$?
    fi
    if [ "$made_policy" -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    [ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc); install them yourself, then re-run"
}

ensure_redis_server() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "redis-server not found on PATH; installing Debian's redis-server"
        apt_install redis-server
        command -v redis-server >/dev/null 2>&1 \
            || die "redis-server still not on PATH after apt-get install redis-server"
    fi
    log "redis-server: $(command -v redis-server) ($(redis-server --version | head -n1))"
}

# The clock-skew tests (tests/attacks/test_clock_skew.py) run workers under Debian's libfaketime.
ensure_faketime() {
    if ! command -v faketime >/dev/null 2>&1 || ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1; then
        log "faketime not found; installing Debian's faketime for the clock-skew tests"
        apt_install faketime
        command -v faketime >/dev/null 2>&1 || die "faketime still not on PATH after apt-get install faketime"
    fi
    log "faketime: $(command -v faketime) ($(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n1))"
}

# The PostgreSQL pass runs through PgBouncer in transaction pooling mode (bin/test).
ensure_pgbouncer() {
    if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
        log "pgbouncer not found; installing Debian's pgbouncer for the PostgreSQL pass"
        apt_install pgbouncer
    fi
    PGBOUNCER_BIN=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)
    [ -x "$PGBOUNCER_BIN" ] || die "pgbouncer still not found after apt-get install pgbouncer"
    log "pgbouncer: $PGBOUNCER_BIN ($("$PGBOUNCER_BIN" --version | head -n1))"
}

# The many-hosts tests (tests/hosts) need ip netns and veth pairs: iproute2, and root.
ensure_iproute2() {
    if ! command -v ip >/dev/null 2>&1; then
        log "ip not found; installing Debian's iproute2 for the many-hosts tests"
        apt_install iproute2
    fi
}

# The admin's browser tests drive Debian's chromium through Playwright (never a downloaded browser).
ensure_chromium() {
    if [ ! -x /usr/bin/chromium ]; then
        log "/usr/bin/chromium not found; installing Debian's chromium for the browser tests"
        apt_install chromium
        [ -x /usr/bin/chromium ] || die "/usr/bin/chromium still missing after apt-get install chromium"
    fi
    log "chromium: /usr/bin/chromium ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
}

# The live monitor's tests (tests/ops/test_tasktop.py) run tasktop in Debian's tmux and read its screen.
ensure_tmux() {
    if ! command -v tmux >/dev/null 2>&1; then
        log "tmux not found on PATH; installing Debian's tmux for the terminal monitor's tests"
        apt_install tmux
        command -v tmux >/dev/null 2>&1 || die "tmux still not on PATH after apt-get install tmux"
    fi
    log "tmux: $(command -v tmux) ($(tmux -V))"
}

# Print "1" if interpreter $1 runs and is Python 3.12 or newer.
_python_ok() {
    [ -n "$1" ] && [ -x "$1" ] || command -v "$1" >/dev/null 2>&1 || return 1
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

# Print the path of a Python 3.12+ interpreter, preferring pyenv's 3.13.
find_python() {
    local candidates=() c
    if [ -n "${PYTHON:-}" ]; then
        _python_ok "$PYTHON" || die "PYTHON=$PYTHON is not a working Python 3.12+ interpreter"
        printf '%s\n' "$PYTHON"
        return
    fi
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    # Newest 3.13.x first.
    for c in $(ls -d "$pyenv_root"/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.13*/bin/python3.13 \
        2>/dev/null | sort -V -r -u); do
        candidates+=("$c")
    done
    c=$(command -v python3.13 2>/dev/null) && candidates+=("$c")
    if command -v pyenv >/dev/null 2>&1; then
        c=$(pyenv which python3.13 2>/dev/null) && candidates+=("$c")
    fi
    [ -x "$pyenv_root/shims/python3.13" ] && candidates+=("$pyenv_root/shims/python3.13")
    # Last resorts: any 3.12+ the machine has.
    c=$(command -v python3.12 2>/dev/null) && candidates+=("$c")
    c=$(command -v python3 2>/dev/null) && candidates+=("$c")
    for c in "${candidates[@]}"; do
        if _python_ok "$c"; then
            printf '%s\n' "$c"
            return
        fi
    done
    die "no Python 3.12+ found (looked at \$PYTHON, ~/.pyenv/versions/3.13*, python3.13 on PATH, pyenv, python3.12, python3). Install Python 3.13 (e.g. 'pyenv install 3.13') or set PYTHON=/path/to/python3.13"
}

# Create $DJTASKS_VENV unless it already holds a working Python 3.12+.
ensure_venv() {
    if _python_ok "$DJTASKS_VENV/bin/python"; then
        log "virtualenv: $DJTASKS_VENV ($("$DJTASKS_VENV/bin/python" -V 2>&1))"
        return
    fi
    local py
    py=$(find_python)
    log "creating virtualenv $DJTASKS_VENV with $py ($("$py" -V 2>&1))"
    rm -rf "$DJTASKS_VENV"
    "$py" -m venv "$DJTASKS_VENV" || die "'$py -m venv $DJTASKS_VENV' failed"
}

# The requirements files that $1 pulls in through "-r other.txt", and itself.
_requirement_files() {
    local f=$1 dir line
    dir=$(dirname "$f")
    printf '%s\n' "$f"
    while IFS= read -r line; do
        case "$line" in
            -r\ * | --requirement\ *)
                _requirement_files "$dir/${line#* }"
                ;;
        esac
    done <"$f"
}

# pip install -r $1 into the venv, skipped when neither the file (nor what it
# includes) nor the interpreter changed since the last successful install.
pip_install_requirements() {
    local req=$1 stamp hash
    stamp="$DJTASKS_VENV/.installed-$(basename "$req").sha256"
    hash=$({
        "$DJTASKS_VENV/bin/python" -VV
        _requirement_files "$req" | while IFS= read -r f; do cat "$f"; done
    } | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
        log "$req unchanged since last install; skipping pip install"
        return
    fi
    log "pip install -r $req"
    rm -f "$stamp"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$DJTASKS_VENV/bin/python" -m pip install -q -r "$req" \
        || die "pip install -r $req failed"
    printf '%s\n' "$hash" >"$stamp"
}

# Exit 0 if nothing listens on 127.0.0.1:$1 (we can bind it).
port_is_free() {
    "$DJTASKS_VENV/bin/python" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# Print a port that is free on 127.0.0.1 now: $1 if given and free, else one the kernel picks.
free_port() {
    if [ -n "${1:-}" ] && port_is_free "$1"; then
        printf '%s\n' "$1"
        return
    fi
    "$DJTASKS_VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}
