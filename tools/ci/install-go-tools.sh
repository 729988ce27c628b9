#!/usr/bin/env bash
# Installs the Go-built tools the repository's own tests need into .sotto/tools/bin (idempotent):
# today only Helm, which tools/helm/chart.spec.ts runs to lint and render helm/sotto.
# Built from source through the Go module proxy with `go install`, the way Helm's Makefile builds
# it (same -ldflags), so no release binary is downloaded or vendored.
# Prints the path of the helm binary on its last line.
set -euo pipefail

# Keep in sync with nothing else: tools/helm/chart.spec.ts reads this line to check the binary.
HELM_VERSION=v3.22.0

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin_dir="$repo_root/.sotto/tools/bin"
helm_bin="$bin_dir/helm"

if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed: install Go 1.26 or newer (https://go.dev/dl/ or apt-get install golang-go)" >&2
  exit 1
fi

if [[ -x "$helm_bin" ]] && [[ "$("$helm_bin" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]; then
  echo "helm $HELM_VERSION already installed"
  echo "$helm_bin"
  exit 0
fi

echo "building helm $HELM_VERSION with go install (a few minutes on two cores)"
start=$SECONDS

# Helm's Makefile stamps the version and the Kubernetes version it renders for (.Capabilities,
# `helm lint` deprecation checks) from the client-go it is built with; without these flags
# `helm template` would claim Kubernetes v1.20.
helm_mod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$helm_mod")" # e.g. v0.37.0
IFS=. read -r k8s_major k8s_minor _ <<<"${client_go#v}"
k8s_major=$((k8s_major + 1))

ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
done

mkdir -p "$bin_dir"
GOBIN="$bin_dir" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

echo "helm $("$helm_bin" version --template '{{.Version}}') for Kubernetes $k8s_major.$k8s_minor built in $((SECONDS - start))s"
echo "$helm_bin"
