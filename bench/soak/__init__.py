"""Bounded soak of a real server: load by kind of traffic, replies judged one by one, figures
reconciled at the end (run it as `python -m bench.soak`)."""
