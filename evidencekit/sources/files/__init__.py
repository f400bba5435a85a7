"""Files and folders in the file system, the first source of every capture: the read-only walk
(walk.py), the manifest fields read from the file system (records.py, birthtime.py), a regular
file opened and read once (source.py), files whose size says nothing (kernel_files.py), and the
collection profiles that choose what to take (profiles/, selection.py).

Nothing is imported here, so that a module needing only the walk or a profile pays for no more.
"""
