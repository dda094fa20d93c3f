"""A real worker process (``run_worker``) whose ``process`` just takes its time.

Environment: the ``BUNKO_*`` settings, plus
- ``TEST_MARKER_DIR``: it writes ``started-<doc>-<pid>`` when a job starts and ``done-<doc>-<pid>``
  when it finishes;
- ``TEST_SLEEP_S``: how long each job takes (heartbeat every 50 ms meanwhile);
- ``TEST_FAIL``: if set, every job raises ``RuntimeError(TEST_FAIL)`` after sleeping.
Runs until SIGTERM, or with ``--drain`` until the queue is empty.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from bunko.ingest.worker import run_worker
from bunko.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    markers = Path(os.environ["TEST_MARKER_DIR"])
    sleep_s = float(os.environ.get("TEST_SLEEP_S", "1"))
    fail = os.environ.get("TEST_FAIL")
    pid = os.getpid()

    def process(document_id: str, heartbeat) -> None:
        (markers / f"started-{document_id}-{pid}").touch()
        end = time.monotonic() + sleep_s
        while time.monotonic() < end:
            heartbeat()
            time.sleep(0.05)
        if fail:
            raise RuntimeError(fail)
        (markers / f"done-{document_id}-{pid}").touch()

    run_worker(Settings(), process, drain="--drain" in sys.argv)


if __name__ == "__main__":
    main()
