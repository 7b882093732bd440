"""What the benches share for measuring: a free port, memory figures from /proc (Linux), and
waiting for a child server to answer."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib() -> float:
    """This process's resident set now."""
    return _status_mib("self", "VmRSS:")


def peak_rss_mib(pid: int) -> float:
    """A process's high-water resident set (VmHWM)."""
    return _status_mib(str(pid), "VmHWM:")


def _status_mib(pid: str, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until `url` answers 200; fails at once if the process that should serve it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")
