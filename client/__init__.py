"""How a job gets run: the embedded mini-cluster, remote submission, the CLI and jps."""
