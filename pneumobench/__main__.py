"""``python -m pneumobench`` runs the command-line interface."""

from pneumobench.cli import main

raise SystemExit(main())
