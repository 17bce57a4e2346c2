"""``python -m wukong`` runs the CLI."""

from wukong.cli import main

main()
