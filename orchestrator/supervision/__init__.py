"""Liveness of the service processes: heartbeats they give, and the watchdog that restarts a
process whose liveness fails (supervisord restarts only those that exit)."""
