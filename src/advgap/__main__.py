"""`python -m advgap` is the `advgap` command."""

from advgap.cli import main

raise SystemExit(main())
