"""Reuse the realistic build generator of the gate tests (tests/unit/gate/conftest.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("edge_kd_tests_gate_fixtures",
                                               Path(__file__).resolve().parents[1] / "gate" / "conftest.py")
_gate_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gate_fixtures)

# pytest collects fixtures from this module's attributes.
_build_templates = _gate_fixtures._build_templates
make_build = _gate_fixtures.make_build
fx = _gate_fixtures.fx
