#!/usr/bin/env bash
# Refresh the vendored NiiVue (the review page's slice viewer) from npm at a pinned version.
#
#   lion_nnunet/review/static/vendor/niivue/refresh.sh            # the pinned version below
#   lion_nnunet/review/static/vendor/niivue/refresh.sh 0.69.0     # another version (then update PINNED and commit)
#
# Writes lion_nnunet/review/static/vendor/niivue/niivue.umd.js (the package's dist/niivue.umd.js,
# unchanged) and niivue.json (package, version, license, the tarball's npm integrity and the
# file's sha256; tests/test_review_viewer.py checks the file against it). The npm tarball has no
# LICENSE file: LICENSE beside it is NiiVue's BSD-2-Clause text (github.com/niivue/niivue).
set -euo pipefail
PINNED=0.69.0
VERSION="${1:-$PINNED}"
DEST="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "@niivue/niivue@$VERSION" > pack.txt
TARBALL="$(tail -n 1 pack.txt)"
INTEGRITY="$(npm view "@niivue/niivue@$VERSION" dist.integrity)"
tar xzf "$TARBALL"
LICENSE_ID="$(node -p "require('./package/package.json').license")"
GOT_VERSION="$(node -p "require('./package/package.json').version")"
if [ "$LICENSE_ID" != "BSD-2-Clause" ] || [ "$GOT_VERSION" != "$VERSION" ]; then
  echo "refresh.sh: expected @niivue/niivue $VERSION under BSD-2-Clause, found $GOT_VERSION under $LICENSE_ID" >&2
  exit 1
fi
mkdir -p "$DEST"
cp package/dist/niivue.umd.js "$DEST/niivue.umd.js"
SHA="$(sha256sum "$DEST/niivue.umd.js" | cut -d' ' -f1)"
cat > "$DEST/niivue.json" <<JSON
{
  "package": "@niivue/niivue",
  "version": "$VERSION",
  "license": "$LICENSE_ID",
  "file": "niivue.umd.js",
  "source": "dist/niivue.umd.js of the npm tarball",
  "npm_integrity": "$INTEGRITY",
  "sha256": "$SHA"
}
JSON
echo "vendored @niivue/niivue $VERSION: $DEST/niivue.umd.js sha256 $SHA"
