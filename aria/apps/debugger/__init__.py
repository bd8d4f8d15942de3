"""aria_debugger: inspect and reconfigure the live system."""
