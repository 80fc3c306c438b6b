#!/usr/bin/env bash
# The one entry point on a fresh Debian machine: install what anonsip needs
# (system packages through apt only when missing, Python packages in .venv),
# then run what was asked:
#   ./go demo      the main job (private Tor network + demo peer + terminal UI)
#   ./go test      the whole test suite: ruff, mypy --strict, unit + integration
#   ./go bench     every benchmark in bench/ on one private network
#   ./go anonsip … the CLI, inside the project environment
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v tor >/dev/null || missing+=(tor)
command -v tor-gencert >/dev/null || missing+=(tor)
ldconfig -p 2>/dev/null | grep -q 'libopus\.so\.0' || missing+=(libopus0)
ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' || missing+=(libportaudio2)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v tmux >/dev/null || missing+=(tmux)
# Bridges where Tor is blocked: obfs4 (client and the private network's bridges);
# the bridge test reads what a censor sees with tcpdump.
command -v obfs4proxy >/dev/null || command -v lyrebird >/dev/null || missing+=(obfs4proxy)
command -v tcpdump >/dev/null || missing+=(tcpdump)
# The multi-host tests: network namespaces, a bridge, private mounts per host.
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v mount >/dev/null || missing+=(mount)
command -v umount >/dev/null || missing+=(mount)  # the full-disk test unmounts its tmpfs
command -v gcc >/dev/null || missing+=(gcc python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "go: installing system packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

stamp=.venv/.installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "go: installing Python packages into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip >&2
    .venv/bin/python -m pip install -q -e '.[dev]' >&2
    echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

cmd=${1:-demo}
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)
        exec anonsip demo "$@" ;;
    test)
        echo "== ruff" >&2
        ruff check anonsip onion tui tests bench
        ruff format --check anonsip onion tui tests bench
        echo "== mypy --strict" >&2
        mypy
        echo "== pytest" >&2
        # Files run in parallel (one worker keeps a file, so module fleets are shared):
        # most of the integration suite waits on Tor, not on the CPU. -n 0 runs serially.
        exec python -m pytest -n "${ANONSIP_TEST_WORKERS:-3}" --dist loadfile "$@" ;;
    bench)
        exec python -m bench.all "$@" ;;
    anonsip)
        exec anonsip "$@" ;;
    *)
        echo "usage: ./go [demo|test|bench|anonsip ARGS]" >&2; exit 2 ;;
esac
