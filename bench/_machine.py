"""Describe the machine a benchmark ran on, so its figures can be read in context.

Every benchmark prints this first: ``from _machine import print_machine`` (bench/ is on sys.path
when a script there is run as ``python bench/NAME.py``).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import TextIO


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count()


def describe_machine() -> dict[str, object]:
    """Platform, CPU model and counts, Python, and the load average at the time of the call."""
    try:
        load: tuple[float, ...] | None = tuple(round(x, 2) for x in os.getloadavg())
    except (AttributeError, OSError):  # Windows has no load average
        load = None
    return {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": _usable_cpus(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "load_average": load,
    }


def print_machine(file: TextIO | None = None) -> None:
    """Print ``describe_machine()`` as aligned ``key value`` lines under a ``machine`` heading."""
    out = file or sys.stdout
    info = describe_machine()
    load = info["load_average"]
    if isinstance(load, tuple):
        info["load_average"] = " ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min)"
    else:
        info["load_average"] = "n/a"
    print("machine", file=out)
    for key, value in info.items():
        print(f"  {key:<13} {value}", file=out)


if __name__ == "__main__":
    print_machine()
