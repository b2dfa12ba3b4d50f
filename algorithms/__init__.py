"""Turning a job (algorithm name, hyper-parameters, dataset) into labels, scores and pictures.

- ``errors``: the error tree; every message is a sentence a student can act on.
- ``dataset``: protocol point dicts to arrays (``Dataset.from_points``).
- ``registry``, ``builtin``, ``plugins``: names to algorithms, built-in or from entry points.
- ``params``: which hyper-parameters a job may set, validated before fitting.
- ``run``: ``run_algorithm``, one job from start to ``JobResult``.
- ``scoring``, ``pictures``: the scores in [0, 1] and the PNG pictures of a result.

This package never imports ``worker`` or ``server``: it runs the same inside a
worker's job process, in a test, or in a notebook.
"""
