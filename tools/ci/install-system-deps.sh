#!/usr/bin/env bash
# Installs the system packages local infrastructure and tests need (idempotent), then resolves
# Kafka's broker jars and tools through tools/kafka/pom.xml so the first Kafka start needs no Maven run.
# Keep the package list in sync with libs/local-infra/src/system-packages.ts.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

have() { command -v "$1" >/dev/null 2>&1; }

have_postgres() {
  # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin.
  if have initdb && have postgres; then return 0; fi
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [[ -x "$dir/initdb" && -x "$dir/postgres" ]]; then return 0; fi
  done
  return 1
}

have_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then return 0; fi
  have java
}

missing=()
have redis-server || missing+=(redis-server)
have_postgres || missing+=(postgresql)
have softhsm2-util || missing+=(softhsm2)
have kcat || missing+=(kcat)
have_java || missing+=(default-jre-headless)
have mvn || missing+=(maven)
have openssl || missing+=(openssl)

if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -ne 0 ]] || ! have apt-get; then
    echo "missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "system packages present"
fi

# Same cache file (name keyed by the pom's hash) that libs/local-infra/src/kafka.ts reads.
pom="$repo_root/tools/kafka/pom.xml"
hash="$(sha256sum "$pom" | cut -c1-16)"
cache_dir="$repo_root/.sotto/cache"
cache_file="$cache_dir/kafka-classpath-$hash.txt"

classpath_ok() {
  [[ -s "$cache_file" ]] || return 1
  local jar
  local IFS=':'
  for jar in $(cat "$cache_file"); do
    [[ -f "$jar" ]] || return 1
  done
}

if classpath_ok; then
  echo "kafka jars already resolved ($cache_file)"
else
  echo "resolving kafka jars with maven"
  mkdir -p "$cache_dir"
  tmp="$cache_file.$$.tmp"
  mvn -q -B -Dstyle.color=never -f "$pom" dependency:build-classpath -Dmdep.outputFile="$tmp"
  mv "$tmp" "$cache_file"
  echo "kafka classpath cached in $cache_file"
fi
