"""CPU and memory of a process tree, read from /proc (shared by the benchmarks)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_and_rss(pid: int) -> tuple[float, float]:
    """CPU seconds (children that exited included) and RSS MiB of a process and its descendants.

    PostgreSQL's backends start sessions of their own, so process groups would miss them; the
    parent links do not.
    """
    stats: dict[int, list[str]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stats[int(proc.name)] = _fields((proc / "stat").read_text())
            except (OSError, IndexError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, fields in stats.items():
            if int(fields[1]) == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    cpu = rss = 0.0
    for member in tree & stats.keys():
        fields = stats[member]
        cpu += sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
        rss += int(fields[21]) * PAGE_SIZE / 2**20
    return cpu, rss


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, reaped children included) of a process and its descendants."""
    return cpu_and_rss(pid)[0]


def own_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of one process alone, without its descendants."""
    return _own_cpu(_fields(Path(f"/proc/{pid}/stat").read_text()))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of a process's live threads, summed by their OS name
    (``comm``: what the gateway names its loops, `python` for unnamed ones)."""
    by_name: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        by_name[name] = by_name.get(name, 0.0) + _own_cpu(_fields(text))
    return by_name


def _fields(stat: str) -> list[str]:
    """A /proc stat line's fields after the command name (which may hold spaces): [0] is the
    state, [1] the parent pid, [11] and [12] user and system time in ticks."""
    return stat.rsplit(")", 1)[1].split()


def _own_cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu_since(before: resource.struct_rusage) -> float:
    """CPU seconds of the child processes waited for since ``before`` (a RUSAGE_CHILDREN
    reading): the benches' publishers."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
