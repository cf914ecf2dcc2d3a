"""Commands: what the CLI and the scheduler call (backup, pipeline, restore, drill, mask,
status, init), each composing operations and returning a result record."""
