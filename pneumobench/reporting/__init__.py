"""The reproduction report: Table 6 side by side, the verdict table, protocol sections, the
authors' own runs and the figures.
"""

from pneumobench.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "authors_runs": (
            "AUTHORS_RULES",
            "AuthorsRunsError",
            "claim_signs",
            "default_path",
            "load_authors_runs",
            "published_rule",
            "selection_effects",
            "table6_by_rule",
        ),
        "history": ("HistoryError", "history", "history_rows"),
        "figures": ("DPI", "Written", "effects", "epoch_selection", "learning_curves", "overlays", "seed_spread"),
        "report": (
            "Report",
            "ReportError",
            "RunGroup",
            "judge_group",
            "load_group",
            "write_authors_report",
            "write_report",
        ),
        "summary": ("count_line", "next_step", "summary_lines", "verdict_table"),
        "sections": (
            "authors_section",
            "claims_by_rule",
            "mean_t_interval",
            "protocol_markdown",
            "protocol_table6",
            "selection_table",
        ),
    },
)
