"""What to run: ``ExperimentConfig`` and its key, the modification registry, the profiles
(``smoke``, ``paper``, ``authors`` ...) and seed parsing.
"""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "config": (
            "MODIFICATIONS",
            "PAPER_MODIFICATIONS",
            "ConfigError",
            "ExperimentConfig",
            "ModelConfig",
            "StageConfig",
            "SyntheticSpec",
            "apply_modifications",
            "config_name",
            "modification",
        ),
        "profiles": ("PROFILES", "Profile", "authors_protocol", "get_profile", "register_profile"),
        "seeds": ("SeedError", "check_seeds", "parse_seed", "parse_seeds"),
    },
)
