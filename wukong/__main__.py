"""``python -m wukong`` runs the CLI."""

try:
    from wukong.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI's modules load
    raise SystemExit(130) from None

main()
