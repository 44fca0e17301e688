"""SIGTERM and SIGINT during training: a request to stop after the current step (with a checkpoint), not a crash."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Callable, Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[str], None]) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGINT call `request_stop(signal name)`; the previous handlers
    come back after it. Only the main thread can install handlers: elsewhere (a notebook's worker
    thread) the block runs without them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        log.warning("received %s: saving a checkpoint and stopping after this step", name)
        request_stop(name)

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
