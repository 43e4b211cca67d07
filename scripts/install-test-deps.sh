#!/bin/sh
# Installs what the tests need beyond Rust: Debian's headless Chromium and its WebDriver
# (chromedriver) for the browser tests, npm for the plugin author's path (`npm publish
# --dry-run` and `npm pack` of a packed plugin), and minisign, whose own keys and signatures the
# author's signing is tried against. Idempotent: does nothing when all are present.
# Needs root (CI runs as root) and Debian's package archive. `.ci/run` calls it before the tests;
# run it by hand once on a development machine.
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v minisign >/dev/null 2>&1 || missing="$missing minisign"
if [ -z "$missing" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps:$missing missing; run this script as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# shellcheck disable=SC2086 # one word per package
apt-get install -y -q --no-install-recommends $missing fonts-dejavu-core >/dev/null
chromium --version
chromedriver --version
npm --version
minisign -v
