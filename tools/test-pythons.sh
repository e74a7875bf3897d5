#!/bin/sh
# Run the fast tests (those not marked slow) on other CPython versions, each in
# a venv of its own named .venv-pyX.Y. CPython 3.12 and later start children
# eagerly (asyncio eager_start), a path that the 3.11 venv of `make test` never
# takes.
#
# Usage: tools/test-pythons.sh VERSION... [-- PYTEST_ARGS...]
#
# Each VERSION (for example 3.12) is found as pythonVERSION on PATH, else under
# pyenv's versions directory ($PYENV_ROOT, default ~/.pyenv). A version that is
# not found is an error with REQUIRE_PYTHONS=1 (as in .ci/run), else it is
# skipped with a message.
set -eu

versions=
while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then
        shift
        break
    fi
    versions="$versions $1"
    shift
done
if [ -z "$versions" ]; then
    echo "test-pythons: no version given; usage: tools/test-pythons.sh 3.12 3.13 [-- PYTEST_ARGS...]" >&2
    exit 2
fi
for version in $versions; do
    if ! printf '%s\n' "$version" | grep -Eq '^[0-9]+\.[0-9]+$'; then
        echo "test-pythons: invalid version '$version'; give major.minor, for example 3.12" >&2
        exit 2
    fi
done
require=${REQUIRE_PYTHONS:-0}
if [ "$require" != 0 ] && [ "$require" != 1 ]; then
    echo "test-pythons: invalid REQUIRE_PYTHONS='$require'; use 1 to fail on a missing version, 0 to skip it" >&2
    exit 2
fi

# Print the path of a working pythonVERSION, or nothing. A pyenv shim on PATH
# exists even when it cannot run that version, so each candidate is run once.
find_python() {
    for candidate in "$(command -v "python$1" 2>/dev/null || true)" \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/python"$1"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "" 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}

status=0
for version in $versions; do
    python=$(find_python "$version")
    if [ -z "$python" ]; then
        if [ "$require" = 1 ]; then
            echo "test-pythons: CPython $version not found on PATH or under pyenv; install it, or leave it out of TEST_PYTHONS" >&2
            exit 2
        fi
        echo "test-pythons: skipped CPython $version: not found on PATH or under pyenv" >&2
        continue
    fi
    venv=.venv-py$version
    # The stamp names the interpreter the venv was made from, so a venv whose interpreter
    # has moved or changed, or that no longer runs, is made again.
    if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ] \
        || [ "$(cat "$venv/.installed")" != "$python" ] || ! "$venv/bin/python" -c "" 2>/dev/null; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q -e '.[test]'
        echo "$python" > "$venv/.installed"
    fi
    echo "test-pythons: CPython $("$venv/bin/python" -c 'import platform; print(platform.python_version())')"
    "$venv/bin/python" -m pytest -m "not slow" "$@" || {
        code=$?
        echo "test-pythons: the tests failed on CPython $version (exit code $code)" >&2
        if [ $status -eq 0 ]; then
            status=$code
        fi
    }
done
exit $status
