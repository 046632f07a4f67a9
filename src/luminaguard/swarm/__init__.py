"""Parallel agents on one machine: a SQLite lease queue, a git worktree per
item, workers with heartbeats, and a coordinator that reclaims work."""
