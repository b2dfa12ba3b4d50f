"""Misbehaving (and one well-behaved) classifiers: a real plugin distribution for tests.

``tests/plugins`` holds this package and its ``dist-info`` as pip would leave
them, registering each class below in the entry-point group
``mlworker.algorithms``; putting the directory on ``PYTHONPATH`` (or
``sys.path``) installs them. Each is a scikit-learn classifier whose ``fit``
does one bad thing; the worker must turn every one into a failed job and go on.

When the environment variable ``MLWORKER_TEST_PLUGIN_DIR`` names a directory,
``test_forks`` and ``test_env`` write what a test needs to check there as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from sklearn.dummy import DummyClassifier

STATE_VARIABLE = "MLWORKER_TEST_PLUGIN_DIR"
_MIB = 1024 * 1024


def _record(name: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``$MLWORKER_TEST_PLUGIN_DIR/<name>.json`` when that is set."""
    directory = os.environ.get(STATE_VARIABLE)
    if directory:
        path = Path(directory, f"{name}.json")
        path.with_suffix(".tmp").write_text(json.dumps(data))
        path.with_suffix(".tmp").replace(path)


def _sleep_forever() -> None:
    while True:
        time.sleep(60)


class OkClassifier(DummyClassifier):
    """test_ok: predicts the most frequent training class, like DummyClassifier."""


class RaisesClassifier(DummyClassifier):
    """test_raises: fit raises ValueError("boom from plugin")."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> RaisesClassifier:
        raise ValueError("boom from plugin")


class AbortsClassifier(DummyClassifier):
    """test_aborts: fit calls os.abort(), killing the process with SIGABRT."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> AbortsClassifier:
        os.abort()


class ExitsClassifier(DummyClassifier):
    """test_exits: fit ends the process with os._exit(3), as a C library calling exit() would."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ExitsClassifier:
        os._exit(3)


class KilledClassifier(DummyClassifier):
    """test_killed: fit dies of SIGKILL, as when the kernel's OOM killer picks the process."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> KilledClassifier:
        os.kill(os.getpid(), signal.SIGKILL)
        return self


class SleepsClassifier(DummyClassifier):
    """test_sleeps: fit never returns."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SleepsClassifier:
        _sleep_forever()
        return self


class AllocatesClassifier(DummyClassifier):
    """test_allocates: fit takes 100 MiB after 100 MiB until MemoryError.

    Only run it under a memory limit: without one it takes the machine's memory.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> AllocatesClassifier:
        blocks = []
        while True:
            blocks.append(bytearray(100 * _MIB))


class CrashesNearLimitClassifier(DummyClassifier):
    """test_crashes_near_limit: fills its address space, then dies of SIGSEGV.

    Like C code that dereferences the NULL a failed malloc returned. It holds
    the memory for two seconds first, so the worker's sampling sees the peak.
    Without an address-space limit it simply crashes.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CrashesNearLimitClassifier:
        blocks = []
        if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
            try:
                while True:
                    blocks.append(bytearray(16 * _MIB))
            except MemoryError:
                time.sleep(2)
        os.kill(os.getpid(), signal.SIGSEGV)
        return self


class ForksClassifier(DummyClassifier):
    """test_forks: starts `sleep 1000` as a grandchild of the worker, then never returns.

    Records ``forks.json``: {"pid": job process, "pgid": its group, "grandchild": pid}.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ForksClassifier:
        grandchild = subprocess.Popen(["sleep", "1000"])
        _record("forks", {"pid": os.getpid(), "pgid": os.getpgrp(), "grandchild": grandchild.pid})
        _sleep_forever()
        return self


class SlowOkClassifier(DummyClassifier):
    """test_slow_ok: records ``slow_ok.json`` ({"pid": job process}), sleeps ``seconds``, fits.

    A job that is surely running while a test signals the worker, and then succeeds.
    """

    def __init__(
        self,
        *,
        seconds: float = 3.0,
        strategy: str = "prior",
        random_state: Any = None,
        constant: Any = None,
    ) -> None:
        super().__init__(strategy=strategy, random_state=random_state, constant=constant)
        self.seconds = seconds

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SlowOkClassifier:
        _record("slow_ok", {"pid": os.getpid()})
        time.sleep(self.seconds)
        return super().fit(X, y, sample_weight)


class EnvClassifier(DummyClassifier):
    """test_env: records the job process's environment in ``env.json``, then fits normally."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> EnvClassifier:
        _record("env", {"environ": dict(os.environ), "pid": os.getpid(), "pgid": os.getpgrp()})
        return super().fit(X, y, sample_weight)


def process_state() -> dict[str, Any]:
    """The process-wide state a job could change, as JSON: what ``test_state`` records."""
    import random
    import warnings

    import matplotlib
    import numpy as np
    import sklearn

    return {
        "sklearn": repr(sorted(sklearn.get_config().items())),
        "numpy_errors": np.geterr(),
        "warnings": repr(warnings.filters),
        "rc_params": repr(sorted(matplotlib.rcParams.items())),
        "numpy_draw": float(np.random.random()),
        "python_draw": random.random(),
        "cwd": os.getcwd(),
        "meddled": os.environ.get("MLWORKER_TEST_MEDDLED"),
    }


class StateClassifier(DummyClassifier):
    """test_state: records ``state.json`` ({"pid", "state": `process_state()`}), then fits."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> StateClassifier:
        _record("state", {"pid": os.getpid(), "state": process_state()})
        return super().fit(X, y, sample_weight)


class MeddlesClassifier(DummyClassifier):
    """test_meddles: changes every piece of `process_state()` (and leaves a figure open), fits.

    Records ``meddles.json`` ({"pid", "state"}) with the state as it left it.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MeddlesClassifier:
        import random
        import warnings

        import matplotlib
        import matplotlib.pyplot as plt
        import numpy as np
        import sklearn

        sklearn.set_config(assume_finite=True, print_changed_only=False)
        np.seterr(all="raise")
        warnings.simplefilter("error")
        matplotlib.rcParams["lines.linewidth"] = 9.0
        matplotlib.rcParams["font.size"] = 30.0
        matplotlib.rcParams["axes.facecolor"] = "red"
        plt.figure()
        np.random.seed(1)
        random.seed(1)
        os.chdir("/")
        os.environ["MLWORKER_TEST_MEDDLED"] = "yes"
        _record("meddles", {"pid": os.getpid(), "state": process_state()})
        return super().fit(X, y, sample_weight)


class LeavesThreadClassifier(DummyClassifier):
    """test_leaves_thread: starts a thread that outlives the job, then fits normally."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LeavesThreadClassifier:
        import threading

        threading.Thread(target=_sleep_forever, daemon=True).start()
        return super().fit(X, y, sample_weight)


_HOARD: list[bytearray] = []


class HoardsClassifier(DummyClassifier):
    """test_hoards: keeps ``mib`` MiB (touched) in a module global after the job, then fits."""

    def __init__(self, *, mib: int = 200, strategy: str = "prior") -> None:
        super().__init__(strategy=strategy)
        self.mib = mib

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> HoardsClassifier:
        _HOARD.append(bytearray(b"x" * (self.mib * _MIB)))
        return super().fit(X, y, sample_weight)
