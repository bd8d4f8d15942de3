"""aria_monitor: metrics, health and the dashboard."""
