"""State backends: keyed state by key group, operator state, snapshots."""
