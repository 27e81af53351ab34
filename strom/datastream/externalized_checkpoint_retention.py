"""``ExternalizedCheckpointRetention``, as
``pyflink.datastream.externalized_checkpoint_retention``."""

from strom.datastream.checkpoint_config import ExternalizedCheckpointRetention

__all__ = ["ExternalizedCheckpointRetention"]
