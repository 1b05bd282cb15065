"""The talks' figures, each from one command: ``python -m gallery NAME [--small]``.

A figure (:class:`gallery.figure.Figure`) declares the grid files it needs (in
``experiments/gallery/``, their reduced versions in ``experiments/gallery/small/``), the
numbers it is about (computed by :mod:`analysis`, where a notebook can call it too) and how it
is drawn. :func:`gallery.figure.make` runs the grids through the normal engine (a rerun
resumes; a second run only redraws), then analyses and draws. ``experiments/README.md`` lists
the figures with their run times.
"""

from gallery.figure import Figure, Made, figures, make

__all__ = ["Figure", "Made", "figures", "make"]
