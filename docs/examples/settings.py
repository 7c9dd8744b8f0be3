"""Settings the documentation's examples run with: the test suite's, plus the example app, myapp.

Sphinx (docs/conf.py) imports djtasks with them, and tests/test_docs_examples.py starts its worker
with them, so the examples' `myapp.tasks` is registered in the worker as the pages say.
"""

import sys
from pathlib import Path

from tests.settings import *  # noqa: F403

sys.path.insert(0, str(Path(__file__).resolve().parent))

INSTALLED_APPS = [*INSTALLED_APPS, "myapp"]  # noqa: F405
