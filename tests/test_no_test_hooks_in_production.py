"""Production code carries no test hooks: faults are patched in from tests/support/faults.py and the
stand-in TF Serving server lives in tests/support/serving.py, which setup.py does not install."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = ("tfcoord", "export")  # the packages setup.py installs (configs/ holds YAML only)
FORBIDDEN = {
    r"TFCOORD_FAULT": "a fault-injection environment variable",
    r"^\s*(from|import)\s+tests\b": "an import of test support",
    r"\bexport\.testing\b|export/testing\.py": "the stand-in server's old home",
    r"^\s*(class ModelStore\b|def (grpc_server|rest_server)\b)": "the stand-in TF Serving server",
}


def production_sources():
    return sorted(path for package in PRODUCTION for path in (REPO / package).rglob("*.py"))


def test_production_code_has_no_test_hooks():
    assert len(production_sources()) > 20  # the walk found the packages
    found = [f"{path.relative_to(REPO)}:{number}: {what}"
             for path in production_sources()
             for number, line in enumerate(path.read_text().splitlines(), 1)
             for pattern, what in FORBIDDEN.items() if re.search(pattern, line)]
    assert not found, "\n".join(found)


def test_the_training_loop_reads_no_environment_variable():
    source = (REPO / "tfcoord" / "training" / "loop.py").read_text()
    assert not re.search(r"\benviron\b|\bgetenv\b", source)
