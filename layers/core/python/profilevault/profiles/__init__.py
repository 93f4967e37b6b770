"""Customer profiles: unification runs and their sealed state, rule sets, reading profiles by role."""
