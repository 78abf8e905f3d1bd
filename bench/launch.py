"""How the runner starts a worker (``python -m bench._worker``): a fresh interpreter, or a fork.

``exec``  a new interpreter per worker, which imports its own libraries: nothing is shared with any other
          worker. The default from scale 0.1 on (the README table).
``fork``  ``bench._forkserver`` imports the data libraries once and forks one child per worker: still a new
          process, without the ~1 s of imports. The default below scale 0.1, where imports would be most of
          the run. Linux only (it waits on process file descriptors); elsewhere ``exec`` is used.

``start`` gives a handle on the running worker (its process id, a time-out-able ``wait``, ``kill``); ``run``
starts one and waits for it. A worker's stdout and stderr go to a log file, whose end explains a crash.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

WORKER = [sys.executable, "-m", "bench._worker"]
FORK_AVAILABLE = hasattr(os, "pidfd_open") and hasattr(os, "fork")


@dataclass
class Exit:
    returncode: int | None  # None: timed out (and killed); negative: killed by that signal
    output: str  # the worker's stderr and stdout


class Handle:
    """A running worker. ``fileno()`` (a pidfd, or None) becomes readable when it ends."""

    def __init__(self, pid: int, reap, log: Path):
        self.pid, self._reap, self.log = pid, reap, log
        self.returncode: int | None = None
        self.fd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None

    def fileno(self) -> int | None:
        return self.fd

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: for ever); True once it has ended (``returncode`` is set)."""
        if self.returncode is None:
            if self.fd is not None:
                if not select.select([self.fd], [], [], timeout)[0]:
                    return False
                self.returncode = self._reap(None)
                os.close(self.fd)
                self.fd = None
            else:
                self.returncode = self._reap(timeout)
        return self.returncode is not None

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # a worker we started, by its process id
            except ProcessLookupError:
                pass

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


class _Launcher:
    def run(self, argv: list[str], timeout: float, log: Path) -> Exit:
        handle = self.start(argv, log)
        if not handle.wait(timeout):
            handle.kill()
            handle.wait(None)
            return Exit(None, handle.output())
        return Exit(handle.returncode, handle.output())


class ExecLauncher(_Launcher):
    mode = "exec"

    def __init__(self, cwd: Path, env: dict):
        self.cwd, self.env = cwd, env

    def start(self, argv: list[str], log: Path) -> Handle:
        with open(log, "wb") as out:
            proc = subprocess.Popen(WORKER + argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT)

        def reap(timeout):
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None

        return Handle(proc.pid, reap, log)

    def preload(self) -> None:
        pass  # each worker imports its own libraries

    def close(self) -> None:
        pass


class ForkLauncher(_Launcher):
    """Workers forked by ``bench._forkserver``: it forks on request (``{"fork": argv, "log": path}`` ->
    ``{"pid": n}``) and reaps on request (``{"reap": pid}`` -> ``{"returncode": rc}``), one JSON object a line."""

    mode = "fork"

    def __init__(self, cwd: Path, env: dict):
        self.cwd, self.env = cwd, env
        self.server = None

    def preload(self) -> None:
        """Start the server now unless it runs: it imports the libraries while the runner does other work
        (the data), and the first request waits for it."""
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "bench._forkserver"], cwd=self.cwd, env=self.env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, bufsize=1,
            )  # fmt: skip

    def _ask(self, request: dict) -> dict:
        self.preload()
        self.server.stdin.write(json.dumps(request) + "\n")
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server ended (exit status {self.server.wait()})")
        return json.loads(line)

    def start(self, argv: list[str], log: Path) -> Handle:
        pid = self._ask({"fork": argv, "log": str(log)})["pid"]
        return Handle(pid, lambda timeout: self._ask({"reap": pid})["returncode"], log)

    def close(self) -> None:
        if self.server is not None:
            self.server.stdin.close()
            self.server.wait()
            self.server = None


def launcher(mode: str, cwd: Path, env: dict):
    return {"exec": ExecLauncher, "fork": ForkLauncher}[mode](cwd, env)
