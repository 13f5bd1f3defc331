#!/usr/bin/env bash
# Installs what rkube builds and tests with, from Debian packages, when it is missing.
set -euo pipefail

packages=(
  protobuf-compiler libprotobuf-dev   # containerd/etcd gRPC clients build with protoc
  etcd-server etcd-client             # the etcd store backend and its tests
  docker-registry                     # the OCI registry the image pull/push tests run against
  containerd runc busybox-static      # the containerd runtime's tests (busybox is the test image)
  containernetworking-plugins         # pod networks of containerd pods (bridge, host-local, loopback)
  iproute2                            # `ip netns` for containerd pods' network namespaces
  curl                                # requests without credentials or with a pod's token (e2e)
  bsdutils                            # `script`: a terminal for the `kubectl exec -it` test
  clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32  # builds the example wasm guests (examples/guests/*.c)
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The end-to-end tests pin kubectl releases from Debian's google-cloud-sdk kubectl package.
for version in 1.32 1.33; do
  if [[ ! -x /usr/lib/google-cloud-sdk/bin/kubectl.$version ]]; then
    echo "kubectl.$version is missing: install the kubectl package" >&2
    exit 1
  fi
done
