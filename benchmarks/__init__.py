"""asv benchmark suite for the ``supervisor`` package.

Modules whose names start with an underscore hold the shared instruments (load
generator, restart probe, percentile arithmetic). They ship with the suite rather
than with the library, because asv runs today's benchmarks against old commits
of ``supervisor``.
"""
