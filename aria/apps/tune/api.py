"""The Python API of aria_tune.

Until the app is built, the running API is :class:`aria.application.PlaceholderApi`: it
answers ``status()`` and ``health()`` and says "not implemented yet".
"""

from aria.application import PlaceholderApi as Api

__all__ = ["Api"]
