"""External benchmarks that run the same trainer, export and samplers on tasks written elsewhere."""
