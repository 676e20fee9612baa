"""`flashgate sale`: create and change sales — the database row first, then Redis."""
