#!/bin/sh
# best-blas.sh DLSCHED-TOOL COMMAND [ARGUMENTS...]
#
# Runs COMMAND with OpenBLAS on the best kernels this CPU allows, and says
# what it did: the project's own runs (make bench, demo, targets, examples)
# go through it so that their figures, the plain-C/BLAS references of the
# benchmarks included, are this machine's.
#
# OpenBLAS picks its kernels when it is loaded, from the CPU models it knows
# or from OPENBLAS_CORETYPE; on a CPU newer than the OpenBLAS build it falls
# back to generic ones (dlsched(7) BLAS). `dlsched doctor --coretype` prints
# the OPENBLAS_CORETYPE that fixes that, or nothing when OpenBLAS's own
# choice fits the CPU. A value already in the environment is kept. The
# original value (empty when unset) goes to the command as
# DLSCHED_ORIGINAL_OPENBLAS_CORETYPE, for benchmarks that also measure the
# environment as a user has it (bench_kernels).
set -eu
tool=$1
shift
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    echo "best-blas: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE, as set in the environment" >&2
    DLSCHED_ORIGINAL_OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE
else
    DLSCHED_ORIGINAL_OPENBLAS_CORETYPE=
    if best=$("$tool" doctor --coretype 2>/dev/null); then
        if [ -n "$best" ]; then
            echo "best-blas: OpenBLAS picks older kernels than this CPU allows;" \
                 "running with OPENBLAS_CORETYPE=$best (dlsched doctor)" >&2
            OPENBLAS_CORETYPE=$best
            export OPENBLAS_CORETYPE
        else
            echo "best-blas: OpenBLAS's own choice of kernels fits this CPU;" \
                 "OPENBLAS_CORETYPE left unset" >&2
        fi
    else
        echo "best-blas: '$tool doctor --coretype' failed; OPENBLAS_CORETYPE left unset" >&2
    fi
fi
export DLSCHED_ORIGINAL_OPENBLAS_CORETYPE
exec "$@"
