#!/usr/bin/env bash
# Debian packages Bunko needs at run time: Tesseract with Japanese (horizontal and vertical) for
# OCR, and IPA fonts for the sample PDFs. Installs only what is missing.
set -euo pipefail
need=()
command -v tesseract >/dev/null 2>&1 || need+=(tesseract-ocr)
if command -v tesseract >/dev/null 2>&1; then
  langs=$(tesseract --list-langs 2>/dev/null || true)
  grep -qx jpn <<<"$langs" || need+=(tesseract-ocr-jpn)
  grep -qx jpn_vert <<<"$langs" || need+=(tesseract-ocr-jpn-vert)
else
  need+=(tesseract-ocr-jpn tesseract-ocr-jpn-vert)
fi
[ -f /usr/share/fonts/opentype/ipafont-gothic/ipag.ttf ] || need+=(fonts-ipafont-gothic)
[ -f /usr/share/fonts/opentype/ipafont-mincho/ipam.ttf ] || need+=(fonts-ipafont-mincho)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
    wrk) command -v wrk >/dev/null 2>&1 || need+=(wrk) ;;
    # bench/realdocs.py: pdftotext/pdftoppm for the gold pages and scans, mandoc for manpages-ja
    poppler) command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils) ;;
    mandoc) command -v mandoc >/dev/null 2>&1 || need+=(mandoc) ;;
    # the upload scanner's tests run Debian's clamd with a signature database they write
    clamav) command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ] || need+=(clamav-daemon) ;;
    # make images / make test-images: podman, and debootstrap for a base where no registry answers
    podman) command -v podman >/dev/null 2>&1 || need+=(podman buildah uidmap slirp4netns fuse-overlayfs runc)
            command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap) ;;
  esac
done
# podman's defaults fail on these machines (crun cannot set rlimits under their cgroups): runc, and
# explicit ulimits. Written only where no containers.conf exists.
if [[ " $* " == *" podman "* && ! -f /etc/containers/containers.conf && "$(id -u)" -eq 0 ]]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\n' \
    > /etc/containers/containers.conf
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
