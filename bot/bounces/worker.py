"""The bounce side of `flashbot run` (SMTP receiver, IMAP polling, processing loop, classifier process) and of `run --once`."""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from bot import logs
from bot.bounces import imap
from bot.bounces.process import Processor
from bot.bounces.receiver import Receiver

log = logging.getLogger(__name__)
IDLE_SECONDS = 2.0  # rows stored by another process (a web replica) are noticed this often


def run_once(cfg, engine, stop: Callable[[], bool] | None = None) -> dict:
    """The bounce part of `flashbot run --once`: poll the IMAP mailbox once (when configured), then process
    every stored mail or event still waiting, until `stop()` (SIGTERM); cron starts no receiver."""
    processor = Processor(cfg, engine)
    out: dict = {}
    if cfg.bounces.imap_url:
        try:
            out["imap"] = imap.poll(cfg, engine, processor, cfg.bounces.imap_password)
        except imap.ImapError as exc:  # the rest of the run goes on; the next run tries again
            logs.event(log, "bounces_imap_failed", logging.WARNING, error=str(exc))
            out["imap_error"] = str(exc)
    processor.run_pending(stop=stop)
    out["processed"] = {str(k): v for k, v in processor.done.items()}  # IMAP mails are processed as they are fetched
    if processor.done:
        logs.event(log, "bounces_processed", **out["processed"])
    return out


def classifier_pool() -> ProcessPoolExecutor | None:
    """One worker process for MIME classification when there is a second core (none on a single core).

    `spawn`, not `fork`: the service has threads, and a forked copy of their locks could deadlock.
    """
    if (os.cpu_count() or 1) < 2:
        return None
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_quiet_signals)


def _quiet_signals() -> None:
    """In the classifier process: Ctrl-C or a SIGTERM sent to the whole process group is the service's
    to handle; the service then shuts the pool down (no KeyboardInterrupt traceback from here)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class BounceWorker:
    """Receives (SMTP, IMAP) and processes stored bounces until stopped; webhooks store through the web app."""

    def __init__(self, cfg, engine):
        self.cfg, self.engine = cfg, engine
        self.processor: Processor | None = None
        self.receiver = Receiver(cfg, engine, self.wake) if cfg.bounces.listen else None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="flashbot-bounce-process")
        self._pool: ProcessPoolExecutor | None = None

    def wake(self) -> None:
        """Something was stored: process it now."""
        self._wake.set()

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> list[str]:
        """Start receiving and processing; summary lines for the startup banner."""
        self._pool = classifier_pool()
        self.processor = await asyncio.to_thread(Processor, self.cfg, self.engine, None, self._pool)
        lines = [f"bounces: return path b-…@{self.cfg.bounces.domain}"]
        if self.receiver is not None:
            port = await self.receiver.start()
            lines.append(f"bounces: SMTP receiver on {self.receiver.host}:{port}")
        self._tasks.append(asyncio.create_task(self._process_loop()))
        if self.cfg.bounces.imap_url:
            self._tasks.append(asyncio.create_task(self._imap_loop()))
            lines.append(f"bounces: IMAP polling every {self.cfg.bounces.imap_interval} s")
        return lines

    async def _process_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                counts = await self._run(self.processor.run_pending, 200, None, None, self._stop.is_set)
                if counts:
                    logs.event(log, "bounces_processed", **{str(k): v for k, v in counts.items()})
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("bounce processing pass failed")
            await self._sleep(IDLE_SECONDS, wake=True)

    async def _imap_loop(self) -> None:
        while not self._stop.is_set():
            try:
                counts = await asyncio.to_thread(imap.poll, self.cfg, self.engine, self.processor, self.cfg.bounces.imap_password)
                if counts["fetched"]:
                    logs.event(log, "bounces_imap_poll", **counts)
            except imap.ImapError as exc:
                logs.event(log, "bounces_imap_failed", logging.WARNING, error=str(exc))
            except Exception:  # noqa: BLE001 - a broken server reply must not end polling
                log.exception("IMAP poll failed")
            await self._sleep(self.cfg.bounces.imap_interval)

    async def _sleep(self, seconds: float, wake: bool = False) -> None:
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def stop(self) -> None:
        """Stop the receiver first (no new mail), then the loops; stored mail waits for the next start."""
        if self.receiver is not None:
            await self.receiver.stop()
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._thread.shutdown(wait=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, True, cancel_futures=True)
