"""Fault injection under sustained ingest: private services, scenarios, checks, report (run it as
`python -m bench.faults`)."""
