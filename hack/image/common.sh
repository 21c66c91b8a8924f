# Shared by hack/image/build and hack/image/check (sourced, not run).
# shellcheck shell=bash
BUILDAH=(buildah --storage-driver vfs)
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../pyproject.toml")"
export DEFAULT_IMAGE="ghcr.io/spillover/spillover:$VERSION"  # the Makefile's IMAGE and the kustomize images entry

need() {  # need COMMAND DEBIAN_PACKAGE: install it with apt-get when missing (as root), else say how
  command -v "$1" >/dev/null && return
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[image] installing $2 (apt-get) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
    command -v "$1" >/dev/null && return
  fi
  echo "error: $1 is needed: install the Debian package $2 (apt-get install $2) and retry" >&2
  exit 1
}

image_size() {  # the image's size as buildah reports it
  "${BUILDAH[@]}" images --format '{{.Size}}' "$1" | head -1
}
