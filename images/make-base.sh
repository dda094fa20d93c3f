#!/usr/bin/env bash
# Make the images' base, localhost/bunko-base:bookworm, with no registry: Debian bookworm (minbase,
# Python 3.11, venv, CA certificates) made by debootstrap from Debian's mirror and imported into
# podman or docker. Used where python:3.11-slim-bookworm cannot be pulled; make images then builds
# FROM it (--build-arg PYTHON_IMAGE=...). Needs root (debootstrap chroots).
# Usage: images/make-base.sh [ENGINE]   (podman by default)
set -euo pipefail
ENGINE="${1:-podman}"
TAG=localhost/bunko-base:bookworm
if "$ENGINE" image exists "$TAG" 2>/dev/null || "$ENGINE" image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG: already there"; exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
work="$(mktemp -d /var/tmp/bunko-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$work/rootfs" http://deb.debian.org/debian
# What a container never reads: downloaded packages, documentation, translations (~95 MB).
rm -rf "$work"/rootfs/var/cache/apt/* "$work"/rootfs/var/lib/apt/lists/* \
  "$work"/rootfs/usr/share/doc/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/locale/*
tar -C "$work/rootfs" -c . | "$ENGINE" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' - "$TAG"
echo "$TAG: made"
