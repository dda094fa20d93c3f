"""The cost of acting with the user's current rights: verifying an access token with the user-row
read (role, active) that finding 15.1 added, against the same verification without it, in one run.

    .venv/bin/python bench/auth.py [--n 3000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    for key in list(os.environ):
        if key.startswith("BUNKO_"):
            del os.environ[key]
    from bunko import auth
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    rt = Runtime(Settings(_env_file=None, data_dir=Path(tempfile.mkdtemp())))  # type: ignore[call-arg]
    auth.create_user(rt, "bench", "bench-password-1", role="user")
    _, pair = auth.login(rt, "bench", "bench-password-1")

    def per_call(fn: object) -> float:
        for _ in range(200):
            fn()  # type: ignore[operator]
        t = time.perf_counter()
        for _ in range(args.n):
            fn()  # type: ignore[operator]
        return (time.perf_counter() - t) / args.n * 1e6

    base = per_call(lambda: auth._decode(rt, pair.access_token, "access") and rt.cache.is_revoked("x"))
    full = per_call(lambda: auth.verify_access_token(rt, pair.access_token))
    print(f"token check without the user row: {base:.0f} us; with it (current role, active): {full:.0f} us "
          f"(+{full - base:.0f} us per request, embedded SQLite)")


if __name__ == "__main__":
    main()
