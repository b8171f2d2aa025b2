"""Labels from less work: proposals from a rough outline (clustering and refinement) and labels
carried from another image by registration, each with a report of how far to trust it."""
