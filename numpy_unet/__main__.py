"""``python -m numpy_unet``: the same as the ``numpy-unet`` command."""

import sys

from .app.cli import main

sys.exit(main())
