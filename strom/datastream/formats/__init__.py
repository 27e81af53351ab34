"""``pyflink.datastream.formats``: file and message formats that are Java libraries in PyFlink.

Each submodule raises ``UnsupportedFeatureError`` for its names, with the reason.
"""
