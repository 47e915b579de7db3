"""Exception types raised by the library.

Every message names the problem and the fix in one line; the CLI prints it and exits with code 2.
"""

__all__ = [
    "ResnetError",
    "ConfigError",
    "UnknownModelError",
    "NoSplitError",
    "DataError",
    "PixelRangeError",
    "WeightsError",
    "NonFiniteLossError",
]


class ResnetError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(ResnetError, ValueError):
    """An option, or a combination of options, that cannot work."""


class UnknownModelError(ConfigError):
    """A model name that is not in the registry."""


class NoSplitError(ConfigError):
    """A split ("val") that the data does not have and no ``val_fraction`` carves out."""


class DataError(ResnetError):
    """Data that is missing, corrupt or of the wrong shape."""


class PixelRangeError(DataError):
    """An image that decodes but whose pixels have no fixed black and white level (32-bit
    integer or floating-point), so reading it as 8-bit would be a guess."""


class WeightsError(ResnetError):
    """A weight or checkpoint file that cannot be loaded into the model."""


class NonFiniteLossError(ResnetError):
    """The loss or the weights became NaN or infinite; the run stopped and kept its last good
    checkpoint (a non-finite checkpoint is never written)."""
