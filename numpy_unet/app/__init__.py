"""The applications built on the library: the ``numpy-unet`` command, the demo, the plots."""
