"""The benchmark suite: Seed against the fastest standard Django + DRF deployment (the floor)."""
