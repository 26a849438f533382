"""The autouse fixture of tests/conftest.py: an unexpected ERROR log fails a test, a declared one does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

CASES = '''
import logging

import pytest

log = logging.getLogger("edge.somewhere")


def test_unexpected():
    log.error("the disk is on fire: %s", "sda")


@pytest.mark.expect_errors("on fire")
def test_declared_by_marker():
    log.error("the disk is on fire")


def test_declared_by_fixture(expect_errors):
    expect_errors(r"boom \\d")
    try:
        raise ValueError("boom 7")
    except ValueError:
        log.exception("failed")  # the exception's text is searched too


@pytest.mark.expect_errors("something else")
def test_declared_but_another():
    log.error("the disk is on fire")


def test_warnings_are_fine():
    log.warning("the disk is warm")
'''


def test_an_unexpected_error_log_fails_the_test_and_a_declared_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import (  # noqa: F401\n"
                                          "    _fail_on_unexpected_error_logs, expect_errors, pytest_configure)\n")
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS),
                                                         os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                             "--strict-markers", "-rf", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    out = result.stdout
    assert "5 passed, 2 errors" in out, out  # the check runs as the fixture is torn down: an error there
    assert "ERROR at teardown of test_unexpected " in out and "ERROR at teardown of test_declared_but_another" in out
    assert "edge.somewhere ERROR: the disk is on fire: sda" in out
