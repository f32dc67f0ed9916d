#!/usr/bin/env sh
# System packages some features need: chromium (browser tests of `imagent serve`),
# ffmpeg (the .cube round-trip check), libvulkan1 + libomp5 (Real-ESRGAN's ncnn runtime).
# Installed when this runs as root with apt; otherwise it says what is missing and
# the features that need them skip their tests or report a one-line error.
set -u
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || missing="$missing libvulkan1"
ldconfig -p 2>/dev/null | grep -q 'libomp.so.5' || missing="$missing libomp5"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages:$missing"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $missing >/dev/null \
        || echo "warning: could not install$missing; the features that need them are skipped"
else
    echo "note: missing system packages:$missing (as root: apt-get install$missing); the features that need them are skipped"
fi
exit 0
