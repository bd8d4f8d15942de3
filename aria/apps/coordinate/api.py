"""The Python API of aria_coordinate.

``aria.whereis("aria_coordinate")`` is the :class:`GatewayService`: ``url`` (where the gateway
listens), ``ca_file`` (the CA that signed its certificate, for HTTPS clients), ``status()``.
Apps add routes by offering ``create_blueprint(service)`` in their ``api.py`` (see
:mod:`aria.http` for ``@public`` and ``@requires``).
"""

from aria.apps.coordinate.app import GatewayService

__all__ = ["GatewayService"]
