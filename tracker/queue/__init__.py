"""The work queue: trials waiting in the store for ``tracker worker`` processes on any machine.

``submit`` queues a run's trials, ``worker`` claims and runs them, ``status`` shows the
queues and their workers. See docs/queue.md.
"""
