"""Flow stage: packets grouped into bidirectional flows with counters, timeouts and Community IDs."""
