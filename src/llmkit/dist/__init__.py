"""Distribution: the process group and device mesh, and parallelisms applied from outside the model."""
