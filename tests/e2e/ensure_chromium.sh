#!/usr/bin/env bash
# Debian's chromium for the viewer's browser test, installed when missing (the test never
# downloads a browser of its own). Prints the browser's path; exits non-zero when it cannot be had.
set -euo pipefail

find_chromium() { command -v chromium || command -v chromium-browser; }

if path=$(find_chromium); then
    echo "$path"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "chromium is not installed and this user cannot apt-get install it" >&2
    exit 3
fi
# Parallel test processes may all find it missing: one installs, the others wait for it.
exec 9>"${TMPDIR:-/tmp}/liqmap-ensure-chromium.lock"
flock 9
if path=$(find_chromium); then
    echo "$path"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y --no-install-recommends chromium >&2; }
# A stale package list fails the install: refresh it once and try again.
install || { apt-get update >&2 && install; }
find_chromium
