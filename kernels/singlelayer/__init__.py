"""Single-layer models trained on a fixed data set of ``n = alpha d`` samples.

The family's theory is the `dmft` kernel (the d -> infinity effective process of GD,
SGD and persistent SGD); its ground truth is the `sgd_multipass` kernel (the same
algorithms at finite d). Both take the parameters of :class:`model.SingleLayerParams`
and declare their shared dims and outputs in :mod:`kernels.singlelayer.schema`, so a
theory point and a simulation point line up in one dataset. Theory: ``docs/singlelayer.md``.

Bayes-optimal inference of the same teacher-student GLMs is the ``amp`` package: the `amp`
kernel (state evolution and the RS free entropy) and its ground truth `gamp` (GAMP at finite
d, on the data `sgd_multipass` draws), with their own shared parameters and declarations
(``amp/params.py``, ``amp/schema.py``): training parameters mean nothing there.
Theory: ``docs/amp.md``.
"""
