"""Source adapters: one per kind of local one-stop system (`sql.SqlSource`, ...)."""
