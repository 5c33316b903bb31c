"""Model families: torch definitions and training (imported only for training), exporters, runtimes, loaders."""
