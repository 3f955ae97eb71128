"""The files copied to boards and run there with the board's Python.

Each is ONE standalone file (standard library, numpy and the chosen runtime only; Python 3.8):
runner.py measures a variant, probe.py reports what a board is and can run. They live in a
folder of their own because a script's folder is the first entry of its sys.path: a module
beside them named like a standard-library module (harness/profile.py and `profile`) would
shadow it when they are run in place.
"""
