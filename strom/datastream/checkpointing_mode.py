"""``CheckpointingMode``, as ``pyflink.datastream.checkpointing_mode``."""

from strom.datastream.checkpoint_config import CheckpointingMode

__all__ = ["CheckpointingMode"]
