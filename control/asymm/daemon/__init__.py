"""The asymm daemon: a fixed-rate pulse loop that runs bounded work every tick."""
