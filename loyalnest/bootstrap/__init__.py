"""Create what the system needs on its servers; every step is safe to run again."""
