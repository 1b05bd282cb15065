"""One module per figure, each defining ``FIGURE`` (:class:`gallery.figure.Figure`)."""
