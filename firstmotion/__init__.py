"""firstmotion: real-time P first-motion polarities and focal mechanisms.

The spine package: CLI, configuration, wire schemas, the Redis bus, metrics, logging and the
pure seismology shared by several stages. It imports neither ``stream`` nor ``workers``.
"""

__version__ = "0.1.0"
