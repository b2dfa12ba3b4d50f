"""Helpers for the reference server's tests: data files, running jobs, valid results."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from worker.api import API

T = TypeVar("T")

WAIT_DEADLINE = 30.0


def wait_for(condition: Callable[[], T], what: str, deadline: float = WAIT_DEADLINE) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.05)


def write_csv(path: Path, sizes: dict[str, int]) -> Path:
    """A small 2-D classification CSV with an explicit ``set`` column of these sizes."""
    lines = ["x,y,label,set"]
    for set_name, count in sizes.items():
        for i in range(count):
            lines.append(f"{i * 0.5},{-i * 0.25},{i % 2},{set_name}")
    path.write_text("\n".join(lines) + "\n")
    return path


def png_bytes(seed: int = 0, padding: int = 0) -> bytes:
    """A valid 1x1 PNG; ``seed`` changes the pixel, ``padding`` adds a text chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(bytes([0, seed % 256]))
    text = chunk(b"tEXt", b"pad\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def running_job(admin: API, owner: API, dataset_id: int, **submit: Any) -> int:
    """Submit a job as ``owner`` and claim it as ``admin``; older pending jobs are failed."""
    job_id = owner.submit_job(submit.pop("algorithm", "knn"), dataset_id, **submit)
    while (claimed := admin.request_job()) != job_id:
        assert claimed is not None, f"job {job_id} was never handed out"
        admin.update_job_details(
            claimed, None, None, None, None, None, success=False, message="set aside by a test"
        )
    return job_id


def result_fields(admin: API, dataset_id: int, score: float = 0.75) -> dict[str, Any]:
    """A valid, complete update for a job on ``dataset_id`` (labels of the right lengths)."""
    sizes = admin.get_datasets()[dataset_id]["points"]
    return {
        "score_test": score,
        "score_validation": score / 2,
        "labels_training": [0] * sizes["training"],
        "labels_test": [1] * sizes["test"],
        "labels_validation": ["a"] * sizes["validation"],
        "extra_scores_test": {"f1_macro": score},
        "extra_scores_validation": {"f1_macro": score / 2},
        "message": "fine",
    }


def dataset_id(api: API, name: str) -> int:
    """The id of the dataset called ``name``."""
    return next(key for key, info in api.get_datasets().items() if info["name"] == name)
