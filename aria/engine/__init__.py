"""Short import paths for aria_engine's planner: ``aria.engine.gtpyhop`` is the GTPyhop drop-in module."""
