"""The course as a static website: ``numpy-unet site OUT`` (needs the ``site`` extra).

:func:`build_site` executes every tutorial in a fresh Jupyter kernel (``execute.py``) and
writes an index and one page per tutorial (``render.py``), all or nothing (``build.py``).
"""

from .build import build_site
from .execute import LessonFailedError

__all__ = ["LessonFailedError", "build_site"]
