"""``vmc`` commands as real processes, without paying the start-up each time.

A command here runs in a fork of the test process (which has torch, diffusers and vmc imported
already): its own process, so a SIGKILL is a real one (no cleanup code runs), file locks are
held by another process, and resource limits apply to it alone; but it starts in milliseconds
instead of the 6-8 s that importing torch, diffusers and transformers takes in a fresh
``python -m vmc_cli`` (``python -X importtime``). The tests that need a fresh interpreter (the
launcher, the console script) keep using ``subprocess``.

The objects answer like :class:`subprocess.Popen` (``poll``, ``wait``, ``send_signal``,
``kill``, ``communicate``, ``returncode``: negative for a signal), and :func:`run` like
:func:`subprocess.run` (``returncode``, ``stdout``, ``stderr``).
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import traceback
from types import SimpleNamespace
from typing import Callable


class Forked:
    def __init__(self, pid: int, out_fd: int, err_fd: int):
        self.pid = pid
        self.returncode: int | None = None
        self._chunks = {"out": [], "err": []}
        self._readers = [threading.Thread(target=self._drain, args=(fd, key), daemon=True)
                         for fd, key in ((out_fd, "out"), (err_fd, "err"))]
        for reader in self._readers:  # drained as it runs: a full pipe must not block the child
            reader.start()

    def _drain(self, fd: int, key: str) -> None:
        with os.fdopen(fd, "rb") as pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                self._chunks[key].append(chunk)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"vmc process {self.pid} ran past {timeout} s")
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = 300) -> tuple[str, str]:
        self.wait(timeout)
        for reader in self._readers:
            reader.join()
        return tuple(b"".join(self._chunks[k]).decode(errors="replace") for k in ("out", "err"))


def _vmc(args) -> Callable[[], None]:
    def body():
        from vmc_cli.cli import main

        main([str(a) for a in args])
    return body


def _script(module: str | None, path: str | None, argv) -> Callable[[], None]:
    def body():
        import runpy

        sys.argv = [path or module, *map(str, argv)]
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(path, run_name="__main__")
    return body


def start(args, env: dict | None = None, before: Callable[[], None] | None = None,
          body: Callable[[], None] | None = None) -> Forked:
    """``vmc ARGS`` (or ``body()``) in a forked process with ``env`` as its whole environment
    (None: this one's); ``before`` runs in the child first (a resource limit, a patched function)."""
    body = body or _vmc(args)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
            if env is not None:
                os.environ.clear()
                os.environ.update(env)
            if before is not None:
                before()
            try:
                body()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - reported on the child's stderr, then exit
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(out_w)
    os.close(err_w)
    return Forked(pid, out_r, err_r)


def run(args, env: dict | None = None, before: Callable[[], None] | None = None, timeout: float = 300):
    """``vmc ARGS`` in a forked process, waited for: ``returncode``, ``stdout``, ``stderr``."""
    proc = start(args, env, before)
    out, err = proc.communicate(timeout)
    return SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err, args=list(args))


def run_python(argv, *, module: str | None = None, path: str | None = None, env: dict | None = None,
               timeout: float = 600):
    """``python -m MODULE ARGV`` or ``python PATH ARGV`` in a forked process, waited for."""
    proc = start([], env, body=_script(module, str(path) if path else None, argv))
    out, err = proc.communicate(timeout)
    return SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err, args=list(argv))
