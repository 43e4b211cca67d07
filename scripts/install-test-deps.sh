#!/bin/sh
# Installs what the browser tests need: Debian's headless Chromium and its WebDriver (chromedriver).
# Idempotent: does nothing when both are present. Needs root (CI runs as root) and Debian's package
# archive. `.ci/run` calls it before the tests; run it by hand once on a development machine.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: chromium and chromedriver are missing; run this script as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
chromium --version
chromedriver --version
