"""Where an on-board meter reads: files, directories and programs of one board.

A Source has three primitive methods, so a remote board needs only these three:

    read_text(path) -> str           a (sysfs) file's content
    listdir(path) -> list[str]       names in a directory (sorted)
    popen(argv) -> Process           a streaming program; argv is a list, never a shell string

``Process`` has ``readline()`` ('' at end of output, stderr folded in) and
``close(timeout)`` which ends the program (terminate, then kill) and reaps it.

``LocalSource`` is this machine; its ``root`` prefixes every absolute path, so tests point
a sysfs meter at a tree written under a temporary directory. An SSH board implements the
same three methods over its connection (``Device.meter_source(root)``, see
harness/power/__init__.py) and every on-board meter works there unchanged.
"""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path


class Process:
    """A running program whose output is read line by line."""

    def readline(self) -> str:
        raise NotImplementedError

    def close(self, timeout: float = 2.0) -> None:
        raise NotImplementedError


class Source:
    """Files and programs of one board (the three primitives plus conveniences)."""

    def read_text(self, path: str) -> str:
        raise NotImplementedError

    def listdir(self, path: str) -> list:
        raise NotImplementedError

    def popen(self, argv: list) -> Process:
        raise NotImplementedError

    # Conveniences built on the primitives, so a new Source gets them for free.
    def exists(self, path: str) -> bool:
        try:
            self.read_text(path)
            return True
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError:  # e.g. PermissionError: it exists
            return True
        try:
            self.listdir(path)
            return True
        except OSError:
            return False

    def run(self, argv: list, timeout: float = 5.0) -> str:
        """Run a program to its end and return its output; kill it after ``timeout`` s."""
        proc = self.popen(argv)
        lines, done = [], threading.Event()

        def pump():
            while True:
                line = proc.readline()
                if not line:
                    break
                lines.append(line)
            done.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        finished = done.wait(timeout)
        proc.close()
        reader.join(timeout=1.0)
        if not finished:
            raise TimeoutError(f"{argv[0]} did not finish within {timeout} s")
        return "".join(lines)

    def describe(self) -> str:
        return type(self).__name__


class LocalProcess(Process):
    def __init__(self, argv: list):
        # A new session so close() can end the program's whole process group.
        self.argv = list(argv)
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, bufsize=1,
                                      start_new_session=True)

    def readline(self) -> str:
        return self._proc.stdout.readline()

    @property
    def returncode(self):
        return self._proc.poll()

    def close(self, timeout: float = 2.0) -> None:
        proc = self._proc
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 15)
            except (ProcessLookupError, PermissionError):
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, 9)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout and not proc.stdout.closed:
            proc.stdout.close()


class LocalSource(Source):
    """This machine; absolute paths are resolved under ``root`` ("/" for the real system)."""

    def __init__(self, root: str = "/"):
        self.root = str(root or "/")

    def path(self, path: str) -> Path:
        return Path(self.root) / str(path).lstrip("/")

    def read_text(self, path: str) -> str:
        return self.path(path).read_text()

    def listdir(self, path: str) -> list:
        return sorted(os.listdir(self.path(path)))

    def popen(self, argv: list) -> Process:
        if isinstance(argv, str):
            raise TypeError("argv must be a list of arguments, not a shell string")
        try:
            return LocalProcess(argv)
        except OSError as exc:
            raise FileNotFoundError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None

    def run(self, argv: list, timeout: float = 5.0) -> str:
        proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise OSError(f"{argv[0]} exited with {proc.returncode}: {proc.stdout.strip()[:200]}")
        return proc.stdout

    def describe(self) -> str:
        return "local" if self.root == "/" else f"local (root {self.root})"
