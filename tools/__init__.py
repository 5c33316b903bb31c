"""Lab tooling, not installed with the package: GPU training runs (`train_device.py`, `gpu_lease.sh`)."""
