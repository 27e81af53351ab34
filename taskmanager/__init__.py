"""The TaskManager: task slots, the task runtime, operators, network and state."""
