"""A worker that serves commands for one system of one task (the small-scale mode).

Below scale 0.1, a task whose rounds need no fresh process (no cold first call, not a convert) keeps one
worker per system (``python -m bench._worker --mode serve``) for the whole task: the runner sends it
``check OUT``, then ``time OUT`` once per round, alternating between the systems' workers as it would between
fresh processes, so the rounds stay interleaved. The workers that wait hold their memory but use no CPU.
Each one sets its system up once (or twice, when the check's state cannot be reused) and warms up once.

A task with cold first calls has each system's check worker serve round 1 too (the check's first call is
its cold figure); every later round is a fresh worker per system, all sent ``setup OUT`` at once (``send``)
and waited for (``reply``) before the round's first timed command, so that their setups overlap each other
but never a timed run.

Commands go through a FIFO the worker reads; it answers ``done`` on another once the report is written. A
worker that dies is noticed through its process handle; one that outlives the time-out is killed.
"""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path

from bench import memory_limit


class ServingWorker:
    def __init__(self, launcher, argv: list[str], scratch: Path, name: str):
        self.commands, self.replies = scratch / f"{name}.commands", scratch / f"{name}.replies"
        for fifo in (self.commands, self.replies):
            os.mkfifo(fifo)
        # O_RDWR: opening never blocks, whether or not the worker has opened its end yet
        self.out = os.open(self.commands, os.O_RDWR)
        self.back = os.open(self.replies, os.O_RDWR | os.O_NONBLOCK)
        argv = [*argv, "--mode", "serve", "--commands", str(self.commands), "--replies", str(self.replies)]
        self.handle = launcher.start(argv, scratch / f"{name}.log")
        self.dead: dict | None = None  # the failure that ended it
        self.pending = ""  # the command sent last

    def request(self, mode: str, out: Path, timeout: float) -> dict:
        """Have the worker run ``mode`` (check, setup or time); its report, or a failure that says how it died."""
        self.send(mode, out)
        return self.reply(out, timeout)

    def send(self, mode: str, out: Path) -> None:
        """Send the command and return at once (``reply`` waits for its report)."""
        self.pending = mode
        if self.dead is None:
            os.write(self.out, f"{mode} {out}\n".encode())

    def reply(self, out: Path, timeout: float) -> dict:
        """The report of the command sent last, once the worker has written it."""
        if self.dead is not None:
            return self.dead
        mode = self.pending
        deadline = time.monotonic() + timeout
        watch = [self.back] + ([self.handle] if self.handle.fileno() is not None else [])
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                self.handle.kill()
                self.handle.wait(None)
                self.dead = {"status": "failed", "error": f"timed out after {timeout:g} s ({mode})"}
                return self.dead
            ready = select.select(watch, [], [], min(wait, 1.0))[0]
            if self.back in ready and os.read(self.back, 64):
                return json.loads(out.read_text())
            if self.handle in ready or self.handle.wait(0):
                self.handle.wait(None)
                self.dead = died(self.handle.returncode, self.handle.output(), mode)
                return self.dead

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within 30 s."""
        try:
            os.write(self.out, b"exit\n")
        except OSError:
            pass
        if not self.handle.wait(30):
            self.handle.kill()
            self.handle.wait(None)
        for fd in (self.out, self.back):
            os.close(fd)


def died(returncode: int | None, output: str, mode: str) -> dict:
    """The report of a worker that ended without writing one."""
    how = f"exit status {returncode}" if returncode is None or returncode >= 0 else f"killed by signal {-returncode}"
    tail = output.strip().splitlines()[-1:] if output.strip() else []
    return {
        "status": "oom" if memory_limit.exit_is_oom(returncode, output) else "failed",
        "error": f"worker {how} during {mode}" + (f": {tail[0]}" if tail else ""),
        "stderr_tail": output[-4000:],
    }
