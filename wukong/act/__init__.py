"""Acting: one pass reads the cache, asks the planners (`wukong.reconcile`), runs their
actions through the adapters and writes the status they decided."""
