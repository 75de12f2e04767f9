"""Every fault of tools/mutation_check.py still applies to the code: its text occurs exactly once in its file, so
that a change to the code cannot silently retire a fault (the check itself runs for hours, not in the suite)."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_fault_applies_exactly_once():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "tools" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    assert len(module.FAULTS) >= 151
    stale = [f.name for f in module.FAULTS if (ROOT / f.path).read_text().count(f.old) != 1]
    assert not stale, f"faults whose text no longer occurs exactly once: {stale}"
    assert len({f.name for f in module.FAULTS}) == len(module.FAULTS)
