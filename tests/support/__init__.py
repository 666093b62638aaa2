"""Test support that production code never imports and ``setup.py`` never installs.

* :mod:`tests.support.serving` -- in-process stand-ins for TF Serving, and ``write_run``.

Importable as ``tests.support`` from the repository root (pytest.ini's ``pythonpath = .``;
``python -m bench.export`` runs from the root too).
"""
