# Shared by the benchmark scripts, sourced after their own argument loop (which sets ROOT and BUILD).
# bench_setup [NOTE]: go to the repository, build unless --no-build, print the machine's load
# (and NOTE); sets BIN to the built programs' folder.
bench_setup() {
    cd "$ROOT"
    if [[ "$BUILD" == 1 ]]; then swift build -c release >&2; fi
    BIN="${BIN_DIR:-.build/release}"   # BIN_DIR: another build folder (e.g. .build-dev/release)
    echo "== load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores${1:+; $1}" >&2
}

# bench_python VAR VENV: unless VAR is set, sets it to VENV/bin/python when that exists, else python3
# (the peers' frameworks live in venvs outside the repository, never in CI).
bench_python() {
    if [[ -z "${!1:-}" ]]; then
        if [[ -x "$2/bin/python" ]]; then printf -v "$1" '%s' "$2/bin/python"; else printf -v "$1" '%s' python3; fi
    fi
}

# median X...: the median of the numbers given.
median() { printf "%s\n" "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
