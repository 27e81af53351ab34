"""``pyflink.datastream.formats.orc``: a JVM format, not available in Strom.

Importing a name from here raises ``UnsupportedFeatureError`` with the reason.
"""

from strom._unsupported import JVM_FORMAT, module_getattr

__getattr__ = module_getattr(__name__, {"*": JVM_FORMAT})
