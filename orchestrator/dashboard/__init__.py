"""The status page: history and catalog in, one self-contained HTML document out (pure).

`render_status_page(PageData) -> str` gives the page; `assess(PageData) -> Headline` gives
its verdict alone (healthy or not, and why). See `model` for the shape of the data.
"""

from orchestrator.dashboard.assess import Headline, assess
from orchestrator.dashboard.model import (
    BackupDoc,
    CycleDoc,
    DrillDoc,
    PageData,
    StepDoc,
    TargetDoc,
)
from orchestrator.dashboard.page import render_status_page

__all__ = [
    "BackupDoc",
    "CycleDoc",
    "DrillDoc",
    "Headline",
    "PageData",
    "StepDoc",
    "TargetDoc",
    "assess",
    "render_status_page",
]
