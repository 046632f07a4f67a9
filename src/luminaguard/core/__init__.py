"""The bottom layer: data every part shares, and nothing else.

Risk levels and reasons (`risk`), the Diff Card (`card`), grants (`grant`),
decisions (`decision`), a preview's observed effects (`effects`), and path
confinement in the workspace's own terms (`paths`). Pure: no I/O, and no
import of any other LuminaGuard module but the error tree (`luminaguard.errors`),
so that `policy/` and `sandbox/` can both depend on it and not on each other.
"""
