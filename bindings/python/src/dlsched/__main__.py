"""python -m dlsched doctor: which library, which version, which backends."""
from __future__ import annotations

import os
import platform
import sys


def doctor() -> int:
    import dlsched
    from dlsched import _lib
    print(f"dlsched (Python package) {dlsched.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}")
    print(f"DLSCHED_LIBRARY: {os.environ.get('DLSCHED_LIBRARY', '(unset)')}")
    try:
        loaded = _lib.load()
    except dlsched.LibraryError as e:
        print(f"library: NOT USABLE: {e}")
        return 1
    print(f"library: {loaded.path}")
    print(f"library version: {dlsched.library_version()} (this package needs "
          f">= {_lib.REQUIRED_MAJOR}.{_lib.REQUIRED_MINOR}, < {_lib.REQUIRED_MAJOR + 1})")
    for dev in ("cpu", "cuda"):
        print(f"backend {dev}: {'available' if dlsched.backend_available(dev) else 'no'}")
    try:
        import numpy
        print(f"numpy: {numpy.__version__}")
    except ImportError:
        print("numpy: not installed (lists and tuples work; q_values returns lists)")
    try:
        import gymnasium
        print(f"gymnasium: {gymnasium.__version__}")
    except ImportError:
        print("gymnasium: not installed (dlsched.gym needs it only for environments)")
    with dlsched.Agent("algo=qtable n_features=1 n_actions=2 bins=2") as agent:
        d = agent.act([0.5])
        agent.observe(d.ticket, 1.0, terminated=True)
    print("smoke test: an agent acted and learned: ok")
    # which kernels a dqn agent's matrix products run on (dlsched(7) BLAS)
    with dlsched.Agent("algo=dqn n_features=4 n_actions=2 hidden=16 device=cpu") as agent:
        st = agent.stats()
    print(f"BLAS: OpenBLAS core {st.blas_core or '(unknown)'}; "
          f"{st.blas_reason or 'its kernels fit this CPU'}")
    return 0


def main(argv: list) -> int:
    if argv[:1] in ([], ["doctor"]):
        return doctor()
    print("usage: python -m dlsched [doctor]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
