#!/usr/bin/env bash
# ctest's "browser: demo page": runs demo.test.mjs, or reports the test SKIPPED (exit code 77)
# with the reason when Node, Debian's Chromium or playwright-core is missing.
# `scripts/install-deps.sh --all` installs all three (what .ci/run uses), so CI never skips it.
#
#   run.sh <http_server binary> <artifact dir>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

skip() {
  echo "SKIPPED: browser test: $*"
  exit 77
}
command -v node >/dev/null 2>&1 || skip "node not found (scripts/install-deps.sh --all installs it)"
major="$(node -p 'process.versions.node.split(".")[0]')"
((major >= 18)) || skip "node $(node --version) is too old: playwright-core needs Node 18 or later"
[[ -x /usr/bin/chromium ]] || skip "/usr/bin/chromium not found (apt-get install chromium, or scripts/install-deps.sh --all)"
[[ -f "$here/node_modules/playwright-core/package.json" ]] ||
  skip "tests/browser/node_modules/playwright-core not found (run npm ci in tests/browser, or scripts/install-deps.sh --all)"

exec node "$here/demo.test.mjs" "$@"
