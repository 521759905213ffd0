"""Built-in workloads: synthetic arrivals and lengths, and trace replay."""
