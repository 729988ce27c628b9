#!/usr/bin/env bash
# Installs the S3-compatible server the backup-store's S3 tests run against (idempotent): moto's
# server mode, from PyPI, in its own virtualenv under .sotto/tools/moto. The tests start it on a
# free loopback port (apps/backup-store/src/testing/s3-server.ts) and stop it afterwards.
# Prints the path of the moto_server binary on its last line.
set -euo pipefail

# Keep in sync with apps/backup-store/src/testing/s3-server.ts, which checks the installed version.
MOTO_VERSION=5.2.5

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.sotto/tools/moto"
moto_bin="$venv/bin/moto_server"

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 is not installed: install Python 3.9 or newer (apt-get install python3 python3-venv)" >&2
  exit 1
fi

installed_version() {
  "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true
}

if [[ -x "$moto_bin" ]] && [[ "$(installed_version)" == "$MOTO_VERSION" ]]; then
  echo "moto $MOTO_VERSION already installed"
  echo "$moto_bin"
  exit 0
fi

echo "installing moto[server] $MOTO_VERSION into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"

echo "moto $(installed_version) installed"
echo "$moto_bin"
