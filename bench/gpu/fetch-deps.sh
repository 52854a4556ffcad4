#!/bin/sh
# bench/gpu/fetch-deps.sh - fetch (here, where Debian's registry is reached)
# the .deb packages bench/gpu/run.sh needs to build on a GPU machine that
# has no package registry: OpenBLAS, Check, zlib's headers, make. They go to
# .gpu-deps/ (ignored by git); carry that folder to the GPU machine, where
# run.sh unpacks them under /tmp (never over /) only if the machine lacks
# what they provide.
set -eu
cd "$(dirname "$0")/../.."
grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >>.git/info/exclude
mkdir -p .gpu-deps
cd .gpu-deps
[ -n "$(find /var/lib/apt/lists -name '*Packages*' 2>/dev/null | head -1)" ] || apt-get update -qq
apt-get download libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0 \
    check libsubunit-dev libsubunit0 zlib1g-dev make
ls -la
du -sh .
