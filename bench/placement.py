"""Pin a process, every thread of it and its descendants, to some CPUs (for the benches)."""

from __future__ import annotations

import os


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process pid, and of its descendants, to cpus."""
    try:
        tasks = os.listdir(f'/proc/{pid}/task')
    except FileNotFoundError:
        return  # the process ended
    for tid in tasks:
        try:
            os.sched_setaffinity(int(tid), cpus)
            with open(f'/proc/{pid}/task/{tid}/children') as f:
                children = f.read().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
        for child in children:
            pin(int(child), cpus)
