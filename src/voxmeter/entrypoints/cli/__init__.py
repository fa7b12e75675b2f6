"""The `voxmeter` command line."""
