"""aria_interface: data ingestion and web UI."""
