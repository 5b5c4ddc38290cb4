"""Collection rules for the whole repository (docstring examples included)."""

# Running `python -m polyconv` is what __main__ is for; importing it would exit.
collect_ignore = ["polyconv/__main__.py", "build"]
