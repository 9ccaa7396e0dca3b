"""Execute one notebook in a fresh kernel and save it, with its outputs, after every cell.

Run as a script, never imported by the course: the grader starts it in a submission's own folder, with a cleaned
environment and, where ``unshare`` is allowed, without a network, then kills it (and with it the kernel) at the time
limit. Saving after every cell keeps what ran before a cell that never ends. It imports only nbformat and nbclient,
so it starts in well under a second.

    python helpers/notebook_runner.py IN.ipynb OUT.ipynb SECONDS
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KERNEL_PID_FILE = "kernel.pid"  # read by the grader where no PID namespace ends the kernel with this process


def execute(source: Path, target: Path, timeout: int) -> int:
    """Run every cell of ``source`` (errors and all), writing ``target`` after each; 0 when the kernel lived."""
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": os.getcwd()}},
    )

    def kernel_started(**_: object) -> None:
        Path(KERNEL_PID_FILE).write_text(str(client.km.provisioner.pid))

    def save(**_: object) -> None:
        nbformat.write(nb, target)

    client.on_notebook_start, client.on_cell_executed = kernel_started, save
    try:
        client.execute()
    except Exception as error:  # a dead kernel or a cell past the limit: what ran is saved, and this says why
        print(
            f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        )
        return 1
    finally:
        save()
    return 0


if __name__ == "__main__":
    sys.exit(execute(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
