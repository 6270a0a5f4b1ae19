"""A moto S3 server that can be stopped and restarted on the same port, keeping its buckets.

moto keeps everything in memory, so a plain restart comes back without the buckets a real store
would still have. ``python -m tests.reliability.moto_store PORT BUCKET...`` creates the buckets
in moto's backend first and then serves it (``moto_server``'s own entry point) on 127.0.0.1:PORT,
so the store that comes back after a restart is ready for the writes that were interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]


class RestartableMoto:
    """``start()``, ``stop()`` (SIGKILL: the store vanishes mid-request), ``restart()``; same port."""

    def __init__(self, buckets: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.buckets = buckets
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()
        self.starts = 0

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.moto_store", str(self.port), *self.buckets],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"moto store exited with {self.proc.returncode}: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/{self.buckets[0]}", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers (moto may reject the anonymous request): up, buckets created before serving
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto store on {self.url} did not answer within {timeout} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self.log.close()


def _serve(port: int, buckets: list[str]) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import main

    for bucket in buckets:
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(bucket, "us-east-1")
    main(["-H", "127.0.0.1", "-p", str(port)])


if __name__ == "__main__":
    _serve(int(sys.argv[1]), sys.argv[2:])
