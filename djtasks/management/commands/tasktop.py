from djtasks.management.commands.taskevents import Command as EventsCommand


class Command(EventsCommand):
    help = (
        "A live full-screen monitor of tasks, workers and queues (taskevents --top); "
        "prints events line by line when stdout is not a terminal."
    )
    top_by_default = True
