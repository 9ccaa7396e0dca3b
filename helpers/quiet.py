"""Quieter libraries for the book's pages: each chapter calls ``quiet_libraries()`` in its setup, explicitly.

``import helpers`` changes nothing outside the package, so import order never matters.
"""

from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging


def quiet_libraries() -> None:
    """Errors only from transformers, and no "Loading weights" bars from either library.

    The denoising loops keep their progress bars. transformers' notice that torchvision is missing (it falls back
    to PIL, which is all the course needs) is printed when diffusers' Stable Diffusion module is first imported,
    so it may appear once on a machine without torchvision.
    """
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    diffusers_logging.disable_progress_bar()
