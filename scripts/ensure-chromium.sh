#!/bin/sh
# Install Debian's Chromium for the Playwright browser tests, if it is missing.
# Without root or sudo this only warns: the browser tests then skip with a reason.
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo -n"; else
  echo "warning: /usr/bin/chromium is missing and no root: browser tests will be skipped" >&2
  exit 0
fi
echo "Installing Debian's chromium for browser tests..."
$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
  || echo "warning: could not install chromium: browser tests will be skipped" >&2
