"""aria_workflow: standard operating procedures: define, validate, run durably."""
