"""Leave no process of a student's code behind: process groups, a subreaper, a sweep.

The grader starts each exercise's child in a session of its own (its own process group)
and kills that group when the child ends or runs out of time. A process that left the
group (one that forked twice and called ``setsid``) is still found: while grading, the
grader is a *child subreaper* (Linux: ``prctl(PR_SET_CHILD_SUBREAPER)``), so every orphan
of the child's tree becomes the grader's own child instead of init's, and :func:`sweep`
kills and collects every descendant that was not there before grading began.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
PR_GET_CHILD_SUBREAPER = 37


def _prctl(option: int, value: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(option, value, 0, 0, 0)


def subreaper(on: bool) -> bool:
    """Make orphaned descendants this process's children (``on``), or stop; True if the
    system can (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    return _prctl(PR_SET_CHILD_SUBREAPER, int(on)) == 0


def is_subreaper() -> bool:
    """Whether this process collects its orphaned descendants now (False off Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    flag = ctypes.c_int(0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    return bool(flag.value)


def children_map() -> dict[int, list[int]]:
    """{parent pid: [child pids]} for every process, read from /proc (empty without it)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # after the name, which may hold spaces
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(root: int, skip: frozenset[int] = frozenset()) -> list[int]:
    """Every process below ``root``, leaving out the subtrees of the pids in ``skip``."""
    children = children_map()
    found, todo = [], [root]
    while todo:
        kids = [k for k in children.get(todo.pop(), []) if k not in skip]
        found += kids
        todo += kids
    return found


def kill_group(group: int) -> None:
    """SIGKILL to every process of the group (nothing if it is gone)."""
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def sweep(keep: frozenset[int], deadline: float = 10.0) -> int:
    """Kill and collect every descendant of this process but the subtrees of ``keep``
    (the children it had before grading), until none is left; how many were killed."""
    killed: set[int] = set()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        left = descendants(os.getpid(), keep)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        killed |= set(left)
        for pid in left:  # collect our own children; the others come to us when they die
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if not left:
            break
        time.sleep(0.005)
    return len(killed)
