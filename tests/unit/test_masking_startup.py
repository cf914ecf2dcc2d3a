"""The masking filter's start-up: each masked group of a restore starts one filter process,
so what it imports is paid once per group; the schema models (pydantic) are not needed."""

from __future__ import annotations

import subprocess
import sys


def test_the_filter_program_starts_without_loading_pydantic() -> None:
    probe = (
        "import sys, orchestrator.masking.__main__, orchestrator.masking.predicate; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (found.returncode, found.stdout.strip()) == (0, "[]")
