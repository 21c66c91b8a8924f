"""Suite-wide rules: in CI (CI=true) an end-to-end test that skips counts as a failure."""

from __future__ import annotations

import os
from collections.abc import Generator

import pluggy
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and "/e2e/" in str(item.fspath):
        report.outcome = "failed"
        report.longrepr = f"e2e test skipped in CI, which counts as a failure: {report.longrepr}"
