"""``import helpers`` has no side effects: the libraries' settings stay as they were, and the runtime does not load
the training package."""

import subprocess
import sys

PROBE = """
from transformers.utils import logging as t
from diffusers.utils import logging as d
before = (t.get_verbosity(), t.is_progress_bar_enabled(), d.is_progress_bar_enabled())
import helpers
after = (t.get_verbosity(), t.is_progress_bar_enabled(), d.is_progress_bar_enabled())
assert before == after, (before, after)
import sys
assert "helpers.tiny" not in sys.modules
helpers.quiet_libraries()
assert (t.get_verbosity(), t.is_progress_bar_enabled(), d.is_progress_bar_enabled()) == (t.ERROR, False, False)
"""


def test_importing_helpers_changes_nothing_and_quiet_libraries_is_explicit():
    subprocess.run([sys.executable, "-c", PROBE], check=True)
