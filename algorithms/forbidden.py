"""Parameter names no job may set, for built-ins and plugins alike.

A job's params come from a student over the network. Names that let a job
take over the machine or touch its files are never allowed: process and
thread counts (``n_jobs``), logging (``verbose``), caches and paths
(``memory``: AgglomerativeClustering creates that directory), ``warm_start``
(every job starts from scratch so results repeat) and the ``copy`` flags
(with them off an estimator may change the worker's arrays in place, and
later predictions see altered data). The registry refuses an algorithm that
declares one; ``params.py`` refuses a job that sends one.
"""

from __future__ import annotations

import re

__all__ = ["FORBIDDEN_PARAMS", "is_forbidden"]

FORBIDDEN_PARAMS = frozenset(
    {"n_jobs", "verbose", "memory", "warm_start", "copy", "copy_x", "copy_X", "cache_size"}
)
# Word parts of a parameter name that mean threads, logs, files or caches; they
# catch plugin estimators' spellings (num_threads, log_file, cache_dir, ...).
_FORBIDDEN_PARTS = frozenset(
    {"jobs", "threads", "thread", "nthread", "verbose", "memory", "cache", "callback",
     "callbacks", "path", "file", "filename", "dir", "directory", "folder"}
)  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")


def is_forbidden(name: str) -> bool:
    """Whether a parameter name is one no job may set (see the module docstring)."""
    return name in FORBIDDEN_PARAMS or bool(_FORBIDDEN_PARTS & set(_WORD.findall(name.lower())))
