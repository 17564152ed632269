"""Suite-wide hooks (see :mod:`tests.skips`)."""

from tests.skips import pytest_runtest_makereport  # noqa: F401  (a hook: pytest finds it by name)
