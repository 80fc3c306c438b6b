"""Settings for the whole suite.

Hypothesis: a test's examples must not depend on how busy the machine is
(CI runs on two shared cores, beside a private Tor network), so there is no
per-example deadline and no "generation is slow" health check; the number
of examples stays each test's own.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("anonsip", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("anonsip")
