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


RUNTIME_PROBE = """
import importlib, pkgutil, sys
import helpers
# chapter 10 trains a new word with the training loop on purpose (helpers.adapters, and its check)
ON_PURPOSE = {"helpers.adapters", "helpers.checks.ch10"}
names = sorted(
    m.name for m in pkgutil.walk_packages(helpers.__path__, "helpers.")
    if not m.name.startswith("helpers.tiny") and m.name not in ON_PURPOSE
)
for name in names:
    importlib.import_module(name)
    assert "helpers.tiny" not in sys.modules, f"{name} imports the training package"
print(len(names))
"""


def test_the_runtime_never_imports_the_training_package():
    probe = subprocess.run(
        [sys.executable, "-c", RUNTIME_PROBE],
        check=True,
        capture_output=True,
        text=True,
    )
    assert int(probe.stdout.split()[-1]) > 30  # every runtime module was imported
