#!/usr/bin/env bash
# Installs everything the test suite needs on Debian 12 (real QEMU, libvirt, Redis, memcached, PostgreSQL, MariaDB, nginx, HAProxy, Chromium, Tempest and Nova (python3-nova) from apt, npm
# dependencies) and runs the whole suite: type check, lint, unit, contract, integration, browser.
# Run as root or with sudo available. This is the README's test command; .ci/run runs exactly it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-system-x86 libvirt-daemon-system libvirt-clients redis-server memcached postgresql mariadb-server nginx haproxy chromium fonts-dejavu-core python3 python3-tempest python3-nova nova-common rabbitmq-server iproute2 vncsnapshot tigervnc-viewer xvfb x11-apps x11-utils imagemagick spice-html5 virt-viewer prometheus rsyslog make g++)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npm test
