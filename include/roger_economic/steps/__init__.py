"""The pipeline's steps, one module each, in the order of a night (see :mod:`roger_economic.pipeline`):
``refresh`` (master data), ``extract``, ``validate``, ``load``; ``fanout`` is what they share."""
