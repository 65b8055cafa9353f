"""Root pytest configuration: hypothesis profiles only (nothing heavy at import).

``dev`` is the default for local runs; ``ci`` (selected when ``CI`` is set, or with
``--hypothesis-profile=ci``) runs more examples, derandomized so CI is reproducible.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
