#!/usr/bin/env bash
# Installs @cornerstonejs/calculate-suv 1.1.0 (MIT), an independent implementation of QIBA's SUV
# pseudo-code that tests/cornerstone_suv.py runs in node, into tests/.node (git-ignored).
# `make test` runs this. Without node, npm or the registry it says so and exits 0: the tests
# that need the package then skip, naming this script.
set -u
cd "$(dirname "$0")/../.."
SPEC="@cornerstonejs/calculate-suv@1.1.0"
if [ -f tests/.node/node_modules/@cornerstonejs/calculate-suv/package.json ] \
    && grep -q '"version": "1.1.0"' tests/.node/node_modules/@cornerstonejs/calculate-suv/package.json; then
    exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "tests/node/install.sh: node or npm not found; the SUV tests against $SPEC will skip" >&2
    exit 0
fi
npm install --prefix tests/.node --no-save --no-audit --no-fund --silent "$SPEC" \
    || echo "tests/node/install.sh: npm could not install $SPEC; the SUV tests against it will skip" >&2
exit 0
