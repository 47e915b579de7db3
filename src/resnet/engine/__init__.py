"""Training, evaluation, prediction and checkpoints.

Import the submodules directly (``resnet.engine.train``, ``resnet.engine.checkpoint``, ...);
this package imports nothing itself so that ``import resnet`` stays fast.
"""
