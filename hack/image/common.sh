# Shared by hack/image/build and hack/image/check (sourced, not run).
# shellcheck shell=bash
BUILDAH=(buildah --storage-driver vfs)
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../../pyproject.toml")"
export DEFAULT_IMAGE="ghcr.io/spillover/spillover:$VERSION"  # the Makefile's IMAGE and the kustomize images entry

need() {  # need COMMAND DEBIAN_PACKAGE (hack/need: installs it with apt-get as root)
  "$(dirname "${BASH_SOURCE[0]}")/../need" "$1" "$2"
}

image_size() {  # the image's size as buildah reports it
  "${BUILDAH[@]}" images --format '{{.Size}}' "$1" | head -1
}
