"""OsteoSegLib: the computational core of the OsteoSeg 3D Slicer extension.

Plain Python, importable inside Slicer and outside it, one folder per pipeline stage. Imports flow
one way, from the top of this list to the bottom (Testing/test_layout.py enforces it):

- `cli/`: the `osteoseg` command, one module per command family, and the demo
- `bench/`: the Segment speed benchmark
- `scene/`, `evaluation/`: the Slicer scene (the only code importing `slicer`); cross-validation and reports
- `training/`: training runs and their validation
- `inference/`: whole-volume prediction, engines, Segment
- `model/`: preprocessing, network, loss, augmentation, devices, model packages, slice data
- `alignment/`, `phantom/`: PET onto the CT grid; the synthetic cohort
- `data/`: cohorts, image files, DICOM, SUV, contours, splits
- ground floor (this folder): errors, atomic writes, output folders, progress, imaging basics, metrics,
  dependencies, the cache folder

Heavy dependencies (torch, slicer, matplotlib) are imported inside the functions that need them where
a module must stay importable without them (Slicer loads the module before its dependencies exist).
"""

import sys

__version__ = "0.1.0"

# The one check of the Python version: the Slicer modules show this message when the import fails.
if sys.version_info < (3, 10):   # 3D Slicer 5.8 and older ship Python 3.9
    raise ImportError(f"OsteoSeg needs 3D Slicer 5.10 or later (Python 3.10 or later); this is Python "
                      f"{sys.version_info[0]}.{sys.version_info[1]}. Please install a newer 3D Slicer.")
