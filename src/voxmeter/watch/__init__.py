"""`voxmeter watch`: poll billing servers on a schedule into a local SQLite history."""
