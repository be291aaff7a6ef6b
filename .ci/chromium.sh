#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver for the web UI's browser tests
# (tests/ui/test_ui_browser.py), unless both are already there. Progress goes to stderr.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "chromium.sh: $(chromium --version 2>/dev/null) and its driver are installed" >&2
    exit 0
fi
echo "chromium.sh: installing chromium and chromium-driver from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq chromium chromium-driver >&2
echo "chromium.sh: $(chromium --version 2>/dev/null)" >&2
