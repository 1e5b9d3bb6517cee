"""Models: how users hand over networks (ModelSpec), teachers' adapters and student families."""
