#!/usr/bin/env bash
# Reproduces the vendored Chart.js in this folder from the npm registry (no CDN at run time):
#   service/web/vendor/build.sh
# Needs npm. Checks the package against the registry's sha512 integrity before unpacking.
set -euo pipefail
VERSION=4.6.1
INTEGRITY="sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g=="
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack "chart.js@$VERSION" --silent >/dev/null
actual="sha512-$(openssl dgst -sha512 -binary "chart.js-$VERSION.tgz" | base64 -w0)"
[ "$actual" = "$INTEGRITY" ] || { echo "integrity mismatch: $actual" >&2; exit 1; }
tar xzf "chart.js-$VERSION.tgz"
cp package/dist/chart.umd.min.js "$here/chart.umd.min.js"
cp package/LICENSE.md "$here/chart.js-LICENSE.md"
echo "vendored Chart.js $VERSION into $here"
