"""Circuit search: serving, probe suites, scoring, the sweep, its results, statistics, ranking and report."""
