"""The Python API of aria_monitor.

``aria.whereis("aria_monitor")`` is the :class:`MonitorService`: ``readiness()``, ``metrics()``
(Prometheus text), ``await history(name, seconds)``, ``home()``, ``os_stats()``, ``logs(...)``.
Its routes, which the gateway mounts: ``create_blueprint`` (``/api/v1/monitor``),
``create_ops_blueprint`` (``/metrics``, ``/health/live``, ``/health/ready``) and
``create_dashboard`` (``/``).
"""

from aria.apps.monitor.http import PAGES, create_blueprint, create_dashboard, create_ops_blueprint
from aria.apps.monitor.service import SAMPLED, MonitorService

__all__ = [
    "PAGES",
    "SAMPLED",
    "MonitorService",
    "create_blueprint",
    "create_dashboard",
    "create_ops_blueprint",
]
