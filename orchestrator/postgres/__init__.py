"""PostgreSQL: client binaries, dump and restore runs, and server inspection."""
