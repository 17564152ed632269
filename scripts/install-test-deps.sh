#!/usr/bin/env bash
# Installs everything roomtone's tests need on a fresh Debian 12 machine: system packages
# (real SIP peers, spandsp, audio tools, Redis, Chromium), the Python package with its dev extras,
# and the npm / Go test clients. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  sip-tester baresip-core         # real SIP phones for interop tests
  libspandsp2                     # the in-band DTMF detector we benchmark against
  espeak-ng sox libsndfile1       # speech and audio for talk-off material
  redis-server                    # real Redis for the multi-node storage tests
  chromium                        # livekit-client in a real browser
  iproute2 iptables tcpdump       # network namespaces for WebRTC tests, captures
  tshark                          # dumpcap: live captures for the dtmf analyze tests
  ca-certificates
)
if [ "${ROOMTONE_SKIP_APT:-}" != 1 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

# A virtualenv inside the checkout keeps test runs of different clones apart.
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

if [ -f tests/js/package.json ]; then
  (cd tests/js && npm install --no-audit --no-fund --loglevel=error)
fi
if [ -f tests/go/go.mod ]; then
  (cd tests/go && go build -o "$PWD/bin/" ./... )
fi
