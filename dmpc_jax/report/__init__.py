"""Pages and plots: markdown tables and formatting shared by every stage's report module."""
