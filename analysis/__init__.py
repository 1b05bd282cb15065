"""Physics on the stores: the numbers the talks' figures are about, for notebooks and the gallery.

Functions take the labelled datasets :func:`sweeper.open` returns (or their variables) and
return numbers or DataArrays; they know nothing of how the stores were made. One module per
model family (:mod:`analysis.twolayer`, :mod:`analysis.singlelayer`); seed means and errors
come from :func:`sweeper.comparison.seed_stats`.
"""
