"""What the tests share: builders of TIFF files, a range server, time bounds, worker functions for
spawned processes, the writer's and the command line's test helpers, and the paths of the fixtures."""
