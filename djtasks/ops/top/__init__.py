"""tasktop: a live terminal monitor of tasks and workers, like `celery events` (Textual).

board.py keeps the state the events describe; feed.py reads Redis and the database in a
thread; detail.py describes one task from its row, redacted; actions.py calls djtasks.control;
render.py turns it all into Rich text; screens.py and app.py are the screen; terminal.py runs
it. Only render, screens, app and terminal need Textual (and its Rich), so board, feed, detail
and actions are plain Python that the tests drive directly and the line dump can use.
"""
