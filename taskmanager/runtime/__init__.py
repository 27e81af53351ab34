"""The task runtime: operator chains, the mailbox loop, sources and sinks."""
