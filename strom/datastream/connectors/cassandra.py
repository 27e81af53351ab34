"""``pyflink.datastream.connectors.cassandra``: a JVM connector, not available in Strom.

Importing a name from here raises ``UnsupportedFeatureError`` with the reason.
"""

from strom._unsupported import JVM_CONNECTOR, module_getattr

__getattr__ = module_getattr(__name__, {"*": JVM_CONNECTOR})
