"""OsteoSegLib: the computational core of the OsteoSeg 3D Slicer extension.

Plain Python, importable inside Slicer and outside it. Heavy dependencies (torch, slicer)
are imported inside the functions that need them so that importing the package stays fast.
"""

__version__ = "0.1.0"
