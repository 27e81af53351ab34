"""The JobManager: TaskManager registry, jobs, scheduling, checkpoints, REST API."""
