"""Pages people look at: the run's comparison chart and the benchmark chart (pure bokeh)."""
