"""Interactive finetuning of the planner (METHOD §6)."""
