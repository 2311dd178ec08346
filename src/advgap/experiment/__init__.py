"""The experiment: run configuration, results store and the runner behind `advgap run`."""
