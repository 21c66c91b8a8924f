"""Start, record and stop lab processes by PID, and pick free loopback ports.

A PID is only signalled after /proc shows the process recorded: the same start time (in clock
ticks since boot, which no later process with that number can have) and the same command line,
so a stale record can never make `down` kill an unrelated process that reused the number (another
clone's lab, whose `python3 -m extender serve` starts with the same argv0).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    Port 0 would hand out an ephemeral port, and between picking it and the lab process binding
    it, any outgoing connection on the machine may take it (seen in CI: "bind: address already
    in use" for a kube-apiserver). Below the ephemeral range only listeners compete.
    """
    low = _ephemeral_low()
    start = max(1024, min(20000, low - 2000))
    for _ in range(200):
        port = random.randrange(start, low)
        if port not in _handed_out and port_is_free(port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range: let the kernel pick
        sock.bind((LOOPBACK, 0))
        picked: int = sock.getsockname()[1]
        return picked


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


@dataclass
class Proc:
    name: str
    pid: int
    argv0: str
    log: str
    argv: list[str] | None = None
    start_ticks: int | None = None
    """When the process started (/proc/PID/stat field 22), recorded at start."""

    def alive(self) -> bool:
        """Alive and still the program we started (guards against PID reuse)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False
        if cmdline and cmdline[-1] == "":
            cmdline.pop()
        if cmdline[:1] != [self.argv0] or (self.argv is not None and cmdline != self.argv):
            return False
        if self.start_ticks is not None and start_ticks(self.pid) != self.start_ticks:
            return False
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            return False
        return "State:\tZ" not in status

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pid": self.pid,
            "argv0": self.argv0,
            "log": self.log,
            "argv": self.argv,
            "start_ticks": self.start_ticks,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Proc:
        argv = data.get("argv")
        return cls(
            str(data["name"]),
            int(str(data["pid"])),
            str(data["argv0"]),
            str(data["log"]),
            [str(a) for a in argv] if isinstance(argv, list) else None,
            int(str(ticks)) if (ticks := data.get("start_ticks")) is not None else None,
        )


def start(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    """Start a detached process (own session) that outlives the command that started it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    started = Proc(
        name=name, pid=proc.pid, argv0=argv[0], log=str(log), argv=list(argv), start_ticks=start_ticks(proc.pid)
    )
    # Until the child has exec'd, /proc shows the parent's command line, and alive() would call
    # a process that is starting fine "exited" (seen on a loaded machine).
    deadline = time.monotonic() + 5
    while not started.alive() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return started


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name (field 2) may hold spaces: fields 3.. follow it
    return int(fields[19])


def stop(proc: Proc, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True if it was running."""
    if not proc.alive():
        return False
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(proc.pid)
        if not proc.alive():
            return True
        time.sleep(0.1)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 5
    while proc.alive() and time.monotonic() < deadline:
        _reap(proc.pid)
        time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (tests start it in-process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: str, lines: int = 15) -> str:
    try:
        return "".join(Path(path).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return "(no log)"
