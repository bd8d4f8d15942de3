"""aria_engine: GTPyhop-style goal-task-network planner."""
