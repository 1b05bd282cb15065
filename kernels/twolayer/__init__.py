"""Two-layer teacher-student networks learning online (one fresh sample per step).

Theories: the `ode` kernel (closed overlap ODEs) and the `meanfield` kernel (the
mean-field particle flow of wide networks and its reduced form); ground truth: the
`sgd_online` kernel (one-pass SGD at finite d). All take the parameters of
:class:`model.TwoLayerParams` and declare their shared dims and outputs in
:mod:`kernels.twolayer.schema`. Theory: ``docs/twolayer.md``.
"""
