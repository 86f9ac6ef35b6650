"""Rules: one module per rule kind; pure functions from typed inputs to store outputs."""
