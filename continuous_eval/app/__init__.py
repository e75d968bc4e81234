"""The composition root: what turns settings and a suite file into a running process."""
