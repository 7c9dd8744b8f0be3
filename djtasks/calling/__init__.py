"""The user's API: Task and @task, enqueue and publish, canvas, results, retries, revoke, progress."""
