"""Jobs: their status changes (transitions, the only code that changes one), services,
selectors, the worker's task, recovery of lost work, the progress arithmetic, the
schedules."""
