"""Device stage: who made each device (IEEE registry, later protocol evidence) and what it is."""
