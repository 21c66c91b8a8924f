"""The lab signals only the processes it started: a record names a process by PID, command line
and start time, so a PID reused by another program, or by another lab's process with the same
argv0, is not taken for it."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from spillover_lab import procs


def test_a_started_process_is_alive_until_stopped_and_its_record_survives_json(tmp_path: Path) -> None:
    proc = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log")
    try:
        assert proc.start_ticks is not None and proc.alive()
        assert procs.Proc.from_json(proc.to_json()) == proc
    finally:
        assert procs.stop(proc)
    assert not proc.alive()


def test_a_record_with_another_start_time_or_command_line_is_not_the_running_process(tmp_path: Path) -> None:
    proc = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log")
    try:
        assert proc.start_ticks is not None
        reused = dataclasses.replace(proc, start_ticks=proc.start_ticks - 1)  # the PID of an earlier process
        same_argv0 = dataclasses.replace(proc, argv=[sys.executable, "-m", "extender", "serve"])
        assert not reused.alive() and not same_argv0.alive()
        assert not procs.stop(reused) and proc.alive()  # nothing signalled on a stale record
    finally:
        procs.stop(proc)
