"""The job-graph model: what the API records and what the cluster runs."""
