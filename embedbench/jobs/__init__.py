"""The two jobs the CLI runs: build -> run -> report. Nothing below this package imports it."""
