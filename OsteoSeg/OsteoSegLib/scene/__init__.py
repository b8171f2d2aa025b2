"""The Slicer scene: the only code that imports `slicer`. The MRML bridge (volumes, segmentations,
transforms, tables), display, Align and Segment in a scene, the segmentation worker process and its
job, segmentation output files, terminology, PET quantification and the sample case. Everything
takes the scene (an `MrmlContext`) as an argument; nothing reaches for `slicer.app`."""
