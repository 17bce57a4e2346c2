"""Wukong's benchmark: `python -m bench` (`nox -s bench`) writes bench/results.json and a PNG."""
