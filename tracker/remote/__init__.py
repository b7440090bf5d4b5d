"""Remote trials over SSH: named hosts, verified connections, code sync, remote venvs, detached runs.

Nothing here is imported by ``tracker --help``; paramiko is imported on first connection.
"""
