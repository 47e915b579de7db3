"""``python -m resnet`` runs the command-line interface."""

from resnet.cli import main

raise SystemExit(main())
