"""``pyflink.datastream.connectors.hybrid_source``: not available in Strom yet.

Importing a name from here raises ``UnsupportedFeatureError`` with the reason.
"""

from strom._unsupported import NOT_BUILT, module_getattr

__getattr__ = module_getattr(__name__, {"*": NOT_BUILT + " (read the sources one after another)"})
