"""Claims jobs as fast as it can and prints each claimed id: ``python -m tests.support.claimer URL WORKER``.

Used to show that two processes never get the same job. Waits for a ``go`` file (argv[3]) first so
both processes start claiming at the same moment.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bunko.ingest import jobs


def main() -> None:
    url, worker, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    from bunko.store.db import get_engine, session_factory

    get_engine(url).connect().close()  # connect before the start signal
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.005)
    while (job := jobs.claim(session_factory(url), worker, lease_s=300)) is not None:
        print(f"claimed {job.id}", flush=True)
        jobs.complete(session_factory(url), job.id, worker)


if __name__ == "__main__":
    main()
