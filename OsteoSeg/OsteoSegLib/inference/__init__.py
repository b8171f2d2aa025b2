"""Inference: whole-volume prediction (every axial slice through one or several networks, back on
the CT grid, with out-of-memory fallback), the engines that run the networks (torch, OpenVINO), and
Segment for one patient."""
