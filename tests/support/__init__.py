"""Test support that production code never imports and ``setup.py`` never installs.

* :mod:`tests.support.faults` -- training faults patched into a child process from outside;
* :mod:`tests.support.serving` -- in-process stand-ins for TF Serving, and ``write_run``;
* :mod:`tests.support.c_api` -- a SavedModel run through TF Serving's own C++ loader (the TF C API).

Importable as ``tests.support`` from the repository root (pytest.ini's ``pythonpath = .``;
``python -m bench.export`` runs from the root too). ``tests/test_no_test_hooks_in_production.py``
keeps production free of these hooks.
"""
