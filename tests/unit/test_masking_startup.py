"""The masking filter's start-up: each masked group of a restore starts one filter process,
so what it imports is paid once per group; the schema models (pydantic) and the logging
stack (structlog) are not needed to mask, and its one error line still hides MASK_KEY."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from orchestrator.masking.__main__ import main
from orchestrator.masking.plan import ColumnPlan, TablePlan, plans_to_json

KEY_TEXT = "startup-test-key-0123456789"
KEEP, SCRUB = ColumnPlan("keep"), ColumnPlan("scrub", {"domain": "example.com"})


def test_the_filter_program_masks_without_loading_pydantic_or_structlog(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(plans_to_json([TablePlan("public.t", {"id": KEEP, "note": SCRUB})]))
    script = (
        "SET client_encoding = 'UTF8';\nCOPY public.t (id, note) FROM stdin;\n1\ta@b.org\n\\.\n"
    )
    probe = (
        "import io, sys; from orchestrator.masking.__main__ import main; "
        f"code = main(['filter', '--plan={plan}'], {{'MASK_KEY': '{KEY_TEXT}'}}, "
        f"io.BytesIO({script.encode()!r}), io.BytesIO()); "
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'structlog'}))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.stdout.strip() == "0 []", found.stderr[-2000:]


def test_the_filter_error_line_masks_the_key_though_it_never_loaded_the_logs(
    tmp_path: Path,
) -> None:
    err = io.StringIO()
    plan = tmp_path / f"plan-{KEY_TEXT}.json"  # the key in a path the message names
    code = main(
        ["filter", f"--plan={plan}"],
        environ={"MASK_KEY": KEY_TEXT},
        stdin=io.BytesIO(b""),
        stdout=io.BytesIO(),
        stderr=err,
    )
    assert code == 2
    assert "cannot read" in err.getvalue()
    assert KEY_TEXT not in err.getvalue()
    assert "***" in err.getvalue()
