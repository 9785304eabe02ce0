"""For teaching: the course kit, its grader, the shared gradient checks, the tutorials' helpers.

- ``checks.py``: the gradient checks of every layer, loss and a small UNet, in one registry;
- ``selfcheck.py``: ``numpy-unet gradcheck``, every check with its report;
- ``course.py``: ``numpy-unet exercises`` (the student copy) and ``numpy-unet grade``;
- ``grading.py``: what ``grade`` runs inside a student copy;
- ``tutorial.py``: the conventions of the scripts in ``tutorials/`` (quick mode, figures).
"""
