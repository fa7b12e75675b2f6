"""`voxmeter watch`: keep the mirrors listed in a TOML file and run their due sweeps without a
server (for cron), in the same database as everything else."""
