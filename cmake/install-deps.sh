#!/bin/sh
# Installs the Debian packages memwatch needs to build, test and run, when they are missing.
# Used by the README's two commands; safe to run again (it installs nothing when all is there).
set -eu

packages="cmake make gcc pkg-config python3 python3.11-dev libsqlite3-dev sqlite3 libzstd-dev liblz4-dev
  python3-numpy python3-pytest python3-nbconvert python3-ipykernel bats bats-support bats-assert bats-file mandoc
  clang libclang-rt-14-dev libfuzzer-14-dev"
# torch is large: only its own package, not the ~470 it recommends. chromium is the
# browser of the report test (tests/cli/report_browser.bats), headless: its recommends
# (fonts, desktop integration) are not needed.
packages_no_recommends="python3-torch chromium"

missing=""
for p in $packages $packages_no_recommends; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "memwatch: installing missing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends $missing
