"""Running a grid: configuration, grid expansion, executors, the run folder and the runner."""
