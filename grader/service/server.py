"""What `grader serve` runs: migrate the store, start the grading worker as a child process
(grading never runs in the web process), then serve the app with uvicorn until stopped."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from .config import Settings, settings_env
from .db import migrate

log = logging.getLogger(__name__)


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(settings), "ANKIGEN_PARENT_PID": str(os.getpid())}
    return subprocess.Popen([sys.executable, "-m", "grader.service.worker"], env=env)


def serve(settings: Settings) -> None:
    import uvicorn

    from .app import create_app

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s serve %(levelname)s %(name)s: %(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    # --no-worker: an API process only; `grader worker` processes elsewhere grade (issue 17)
    worker = start_worker(settings) if settings.worker else None
    try:
        app = create_app(settings)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info",
                    proxy_headers=True)
    finally:
        if worker is not None:
            stop_worker(worker)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
