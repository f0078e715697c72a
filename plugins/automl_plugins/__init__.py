"""automl's built-in families and datasets, registered as plugins like any other."""
